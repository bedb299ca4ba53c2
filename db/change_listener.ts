import postgres from "postgres";

/** The channel on which every statement that changes results announces its commit. */
export const CHANGES_CHANNEL = "scorestream_changes";

/** What `listenForChanges` reports to. */
export interface ChangeListenerOptions {
  url: string;
  /**
   * A change committed (Postgres delivers notifications on commit, in commit
   * order), by the instance `origin` names (see `applyScores`).
   */
  onChange: (origin: string) => void;
  /**
   * `true` once listening, and again after every reconnect: changes made
   * while not listening were missed. `false` as soon as the connection is lost.
   */
  onListening: (listening: boolean) => void;
  /** The pause between attempts to listen while Postgres cannot be reached. */
  retryMs?: number;
  /**
   * How often the listener notifies itself; a notification not heard back
   * by the next one counts as a lost connection.
   */
  heartbeatMs?: number;
}

/**
 * LISTENs on `CHANGES_CHANNEL` on a connection of its own and keeps listening
 * through restarts and outages of Postgres. It also proves that it still
 * hears: it notifies itself every `heartbeatMs`, and one not heard back in
 * time (a connection dead without a reset, or a pooler in transaction mode
 * that never delivers notifications) counts as lost. `close()` stops it.
 */
export function listenForChanges(
  { url, onChange, onListening, retryMs = 1_000, heartbeatMs = 5_000 }: ChangeListenerOptions,
): { close(): Promise<void> } {
  let closed = false;
  let listening = false;
  let closes = 0;
  let retry: ReturnType<typeof setTimeout> | undefined;
  // Heartbeats carry this process's token: other listeners ignore them.
  const token = `heartbeat:${crypto.randomUUID()}`;
  let beatsSent = 0;
  let beatsHeard = 0;
  const lost = () => {
    if (listening) {
      listening = false;
      onListening(false);
    }
    if (!closed && retry === undefined) retry = setTimeout(listen, retryMs);
  };
  // One connection that never idles out: LISTEN holds only on the connection
  // that ran it, and postgres.js calls onclose when that one is gone.
  // onnotify is how postgres.js's own listen() hears notifications (3.4.9,
  // src/index.js), missing from its types; listen() itself is not used, since
  // it stops for good when its first attempt to listen again fails.
  const options = {
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    fetch_types: false,
    onnotice: () => {},
    connect_timeout: 10,
    connection: { application_name: "scorestream-changes" },
    onnotify: (channel: string, payload: string) => {
      if (channel !== CHANGES_CHANNEL) return;
      if (payload.startsWith(`${token}:`)) {
        beatsHeard = Math.max(beatsHeard, Number(payload.slice(token.length + 1)));
      } else if (!payload.startsWith("heartbeat:")) onChange(payload);
    },
  };
  // Only the current connection's close counts: a silent one is replaced first.
  const connect = () => {
    const client = postgres(url, {
      ...options,
      onclose: () => {
        if (client !== sql) return;
        closes++;
        lost();
      },
    });
    return client;
  };
  let sql = connect();

  const heartbeat = setInterval(() => {
    if (!listening) return;
    if (beatsHeard < beatsSent) {
      // Not heard back: drop the connection and listen on a new one.
      const silent = sql;
      sql = connect();
      silent.end({ timeout: 0 }).catch(() => {});
      closes++;
      lost();
      return;
    }
    beatsSent++;
    sql`SELECT pg_notify(${CHANGES_CHANNEL}, ${`${token}:${beatsSent}`})`.catch(() => {});
  }, heartbeatMs);

  async function listen() {
    retry = undefined;
    const before = closes;
    try {
      await sql.unsafe(`LISTEN ${CHANGES_CHANNEL}`);
    } catch {
      return lost();
    }
    // A connection closed meanwhile may be the one that listened: lost()
    // has scheduled another attempt.
    if (closed || closes !== before) return;
    beatsHeard = beatsSent;
    listening = true;
    onListening(true);
  }
  listen();

  return {
    async close() {
      closed = true;
      clearTimeout(retry);
      clearInterval(heartbeat);
      await sql.end({ timeout: 1 });
    },
  };
}
