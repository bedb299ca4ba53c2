/**
 * A loopback TCP proxy that a test can take down and bring back up, to play a
 * database outage or a silent network without touching the real server.
 */
export interface TcpProxy {
  port: number;
  /** Cuts every open connection and refuses new ones, like a stopped server. */
  down(): void;
  /** Accepts and forwards connections again. */
  up(): void;
  /** Keeps connections open but forwards nothing: a silent network. */
  stall(): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a proxy on an ephemeral loopback port in front of `target`. */
export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const open = new Set<Deno.Conn>();
  let mode = "up" as "up" | "down" | "stall";
  const pipes: Promise<void>[] = [];

  async function pipe(from: Deno.Conn, to: Deno.Conn) {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        while (mode === "stall") await new Promise((r) => setTimeout(r, 20));
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch {
      // A cut connection ends the pipe.
    }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch { /* already closed */ }
      open.delete(c);
    }
  }

  const accept = async (listener: Deno.Listener) => {
    for await (const client of listener) {
      try {
        const server = await Deno.connect(target);
        open.add(client).add(server);
        pipes.push(pipe(client, server), pipe(server, client));
      } catch {
        client.close();
      }
    }
  };
  let accepting = accept(listener);

  const cut = () => {
    for (const c of open) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    open.clear();
  };
  const close = async () => {
    if (mode !== "down") listener.close();
    cut();
    await accepting.catch(() => {});
    await Promise.all(pipes);
  };
  return {
    port,
    down() {
      // Closing the listener makes new connections fail with ECONNREFUSED, as
      // they do when the server is stopped.
      if (mode !== "down") listener.close();
      mode = "down";
      cut();
    },
    up() {
      if (mode === "down") {
        listener = Deno.listen({ hostname: "127.0.0.1", port });
        accepting = accept(listener);
      }
      mode = "up";
    },
    stall() {
      mode = "stall";
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
