import type { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketHandler, type PGLiteSocketHandlerOptions } from "@electric-sql/pglite-socket";
import { createServer } from "node:net";

// Message types after which a client waits for the server: Sync, Query, Flush,
// CopyDone, CopyFail, Terminate. A startup packet has no type byte; its first
// byte is the high byte of its length, always 0.
const UNIT_ENDS = new Set([0x53, 0x51, 0x48, 0x63, 0x66, 0x58, 0x00]);

interface Unit {
  handlerId: number;
  bytes: Uint8Array;
  onData: (data: Uint8Array) => void;
  resolve: (n: number) => void;
  reject: (e: unknown) => void;
}

/**
 * Runs each client's protocol messages on the single PGlite session one whole
 * unit at a time (everything up to a Sync or a simple Query), and keeps the
 * session pinned to a client while it is inside a transaction. pglite-socket's
 * own queue interleaves single messages of different clients (pglite issue 1046):
 * one client's Parse could then be bound by another's Bind.
 */
class UnitQueue {
  #pending = new Map<number, Uint8Array[]>();
  #units: Unit[] = [];
  #running = false;
  #pinned: number | null = null;

  constructor(private readonly pglite: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (d: Uint8Array) => void) {
    const parts = this.#pending.get(handlerId) ?? [];
    parts.push(message);
    if (!UNIT_ENDS.has(message[0])) {
      this.#pending.set(handlerId, parts);
      return Promise.resolve(0);
    }
    this.#pending.delete(handlerId);
    return new Promise<number>((resolve, reject) => {
      this.#units.push({ handlerId, bytes: concat(parts), onData, resolve, reject });
      this.#run();
    });
  }

  async #run() {
    if (this.#running) return;
    this.#running = true;
    try {
      while (true) {
        const index = this.#pinned === null
          ? 0
          : this.#units.findIndex((u) => u.handlerId === this.#pinned);
        if (index < 0 || this.#units.length === 0) break;
        const [unit] = this.#units.splice(index, 1);
        let sent = 0;
        try {
          await this.pglite.runExclusive(() =>
            this.pglite.execProtocolRawStream(unit.bytes, {
              onRawData: (data) => {
                sent += data.length;
                unit.onData(data);
              },
            })
          );
          unit.resolve(sent);
        } catch (error) {
          unit.reject(error);
        }
        this.#pinned = this.pglite.isInTransaction() ? unit.handlerId : null;
      }
    } finally {
      this.#running = false;
    }
  }

  getQueueLength() {
    return this.#units.length;
  }

  clearQueueForHandler(handlerId: number) {
    this.#pending.delete(handlerId);
    this.#units = this.#units.filter((u) => {
      if (u.handlerId === handlerId) u.reject(new Error("Handler disconnected"));
      return u.handlerId !== handlerId;
    });
  }

  async clearTransactionIfNeeded(handlerId: number) {
    if (this.#pinned !== handlerId) return;
    if (this.pglite.isInTransaction()) await this.pglite.exec("ROLLBACK");
    this.#pinned = null;
    this.#run();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Serves a PGlite instance on an ephemeral loopback port. */
export async function serveOverSocket(pglite: PGlite) {
  const queue = new UnitQueue(pglite);
  const handlers = new Set<PGLiteSocketHandler>();
  const server = createServer((socket) => {
    const handler = new PGLiteSocketHandler({
      // The handler only calls the queue's public methods, which UnitQueue has.
      queryQueue: queue as unknown as PGLiteSocketHandlerOptions["queryQueue"],
      closeOnDetach: true,
    });
    handlers.add(handler);
    handler.addEventListener("close", () => handlers.delete(handler));
    handler.addEventListener("error", () => handlers.delete(handler));
    handler.attach(socket).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("Cannot read the port");
  return {
    port: address.port,
    async close() {
      await Promise.all([...handlers].map((h) => h.detach(true)));
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
