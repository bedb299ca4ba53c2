/** Students and exams whose results were just committed. */
export interface Changes {
  students: Iterable<string>;
  exams: Iterable<number>;
}

/**
 * Tells the API which students and exams changed, as soon as their writes
 * commit. Only worth wiring when every write to the database is published
 * here, as with ingest in the same process: the API then trusts its cached
 * bodies until they are reported changed instead of asking the database.
 */
export interface ChangeFeed {
  publish(changes: Changes): void;
  subscribe(listener: (changes: Changes) => void): void;
}

export function createChangeFeed(): ChangeFeed {
  const listeners: ((changes: Changes) => void)[] = [];
  return {
    publish(changes) {
      for (const listener of listeners) listener(changes);
    },
    subscribe(listener) {
      listeners.push(listener);
    },
  };
}
