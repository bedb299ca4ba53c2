/** Students and exams whose results were just committed. */
export interface Changes {
  students: Iterable<string>;
  exams: Iterable<number>;
}

/**
 * Tells the API what changed, as soon as the writes commit: which students and
 * exams (ingest in the same process knows), or `"everything"` (a listener that
 * only hears that something committed). Only worth wiring when every write to
 * the database is reported here: the API then trusts its cached bodies until
 * they are reported changed instead of asking the database. While the feed is
 * not `live` (its source may be missing changes), nothing cached is trusted.
 */
export interface ChangeFeed {
  publish(changes: Changes | "everything"): void;
  subscribe(listener: (changes: Changes | "everything") => void): void;
  /** Whether every change is being reported. */
  readonly live: boolean;
  /**
   * Going live reports that everything may have changed: whatever was read
   * while changes went unreported is not trusted afterwards.
   */
  setLive(live: boolean): void;
}

export function createChangeFeed({ live = true }: { live?: boolean } = {}): ChangeFeed {
  const listeners: ((changes: Changes | "everything") => void)[] = [];
  const publish = (changes: Changes | "everything") => {
    for (const listener of listeners) listener(changes);
  };
  return {
    publish,
    subscribe(listener) {
      listeners.push(listener);
    },
    get live() {
      return live;
    },
    setLive(value) {
      if (value && !live) publish("everything");
      live = value;
    },
  };
}
