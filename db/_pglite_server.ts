import type { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketHandler, type PGLiteSocketHandlerOptions } from "@electric-sql/pglite-socket";
import { createServer } from "node:net";

// Message types after which a client waits for the server: Sync, Query, Flush,
// CopyDone, CopyFail. A startup packet has no type byte; its first byte is the
// high byte of its length, always 0. Terminate ends the client's session.
const UNIT_ENDS = new Set([0x53, 0x51, 0x48, 0x63, 0x66, 0x00]);
const TERMINATE = 0x58;
const READY_FOR_QUERY = 0x5a;
const IDLE = 0x49;
// CopyFail ends a COPY FROM STDIN, Sync an extended-protocol exchange and its
// error state; outside either, the server ignores both.
const RESET = new Uint8Array([
  ...[0x66, 0, 0, 0, 5, 0], // CopyFail with an empty message
  ...[0x53, 0, 0, 0, 4], // Sync
]);

interface Unit {
  handlerId: number;
  bytes: Uint8Array;
  terminate: boolean;
  onData: (data: Uint8Array) => void;
  resolve: (n: number) => void;
  reject: (e: unknown) => void;
}

/**
 * Gives each client of the single PGlite session the semantics of a session of
 * its own. The session belongs to one client from that client's first message
 * until the server answers it ReadyForQuery idle: outside an explicit
 * transaction, and outside the implicit one that the extended protocol keeps
 * open from Parse to Sync (postgres.js ends a unit with Flush, describing a
 * statement before it binds it). Meanwhile other clients' messages wait. Ending
 * a unit at Flush without keeping the session let another client's statement
 * run inside that implicit transaction: its error left the server discarding
 * messages until the next Sync, the first client's Bind and Execute among them,
 * and that client waited for good (pglite-socket's own queue interleaves even
 * single messages: pglite issue 1046). A client that disconnects or terminates
 * while it holds the session has its COPY, exchange and transaction ended.
 */
class SessionQueue {
  #pending = new Map<number, Uint8Array[]>();
  #units: Unit[] = [];
  #running = false;
  #owner: number | null = null;
  #gone = false;

  constructor(private readonly pglite: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (d: Uint8Array) => void) {
    const parts = this.#pending.get(handlerId) ?? [];
    parts.push(message);
    const terminate = message[0] === TERMINATE;
    if (!terminate && !UNIT_ENDS.has(message[0])) {
      this.#pending.set(handlerId, parts);
      return Promise.resolve(0);
    }
    this.#pending.delete(handlerId);
    if (terminate) parts.pop();
    return new Promise<number>((resolve, reject) => {
      this.#units.push({ handlerId, bytes: concat(parts), terminate, onData, resolve, reject });
      this.#run();
    });
  }

  async #run() {
    if (this.#running) return;
    this.#running = true;
    try {
      while (true) {
        if (this.#owner !== null && this.#gone) {
          await this.#reset();
          continue;
        }
        const index = this.#owner === null
          ? 0
          : this.#units.findIndex((u) => u.handlerId === this.#owner);
        if (index < 0 || this.#units.length === 0) break;
        const [unit] = this.#units.splice(index, 1);
        // A client that terminates between exchanges leaves nothing to end.
        if (unit.terminate && unit.bytes.length === 0 && this.#owner === null) {
          unit.resolve(0);
          continue;
        }
        this.#owner = unit.handlerId;
        const ready = new ReadyForQueryTracker();
        let sent = 0;
        let failed = false;
        try {
          if (unit.bytes.length > 0) {
            await this.pglite.runExclusive(() =>
              this.pglite.execProtocolRawStream(unit.bytes, {
                onRawData: (data) => {
                  sent += data.length;
                  ready.push(data);
                  unit.onData(data);
                },
              })
            );
          }
          unit.resolve(sent);
        } catch (error) {
          unit.reject(error);
          failed = true;
        }
        if (unit.terminate || failed) {
          this.#gone = true;
        } else if (ready.idle && !this.pglite.isInTransaction()) {
          this.#owner = null;
          this.#gone = false;
        }
      }
    } finally {
      this.#running = false;
    }
  }

  async #reset() {
    try {
      await this.pglite.runExclusive(() => this.pglite.execProtocolRaw(RESET));
      // exec() takes the lock itself.
      if (this.pglite.isInTransaction()) await this.pglite.exec("ROLLBACK");
    } finally {
      this.#owner = null;
      this.#gone = false;
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

  clearTransactionIfNeeded(handlerId: number) {
    if (this.#owner !== handlerId) return Promise.resolve();
    this.#gone = true;
    return this.#run();
  }
}

/**
 * Follows the framing of the server's messages (a type byte, then a length
 * that counts itself) across chunks, and says whether the last one was
 * ReadyForQuery with the status idle.
 */
class ReadyForQueryTracker {
  idle = false;
  #header = new Uint8Array(6);
  #have = 0;
  #skip = 0;

  push(data: Uint8Array) {
    let i = 0;
    while (i < data.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, data.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      this.#header[this.#have++] = data[i++];
      if (this.#have < 5) continue;
      const length = new DataView(this.#header.buffer).getInt32(1);
      if (this.#header[0] === READY_FOR_QUERY && length === 5) {
        if (this.#have < 6) continue;
        this.idle = this.#header[5] === IDLE;
        this.#have = 0;
        continue;
      }
      this.idle = false;
      this.#skip = length - 4;
      this.#have = 0;
    }
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
  const queue = new SessionQueue(pglite);
  const handlers = new Set<PGLiteSocketHandler>();
  const server = createServer((socket) => {
    const handler = new PGLiteSocketHandler({
      // The handler only calls the queue's public methods, which SessionQueue has.
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
