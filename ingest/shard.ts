/**
 * The writer that owns a student: FNV-1a over the id's UTF-16 code units,
 * modulo the writer count. Stable across runs and releases, so a student's
 * events always meet in one writer, in order.
 */
export function shardOf(studentId: string, writers: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < studentId.length; i++) {
    hash ^= studentId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % writers;
}
