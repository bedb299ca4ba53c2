/**
 * The identity of a feed by its URL, the key of its checkpoint: the URL without
 * its credentials (`user:password@`), query and fragment, as written (not
 * normalised). Migration 0004 rewrote older keys with the same rule: change it
 * only together with a migration.
 */
export function feedIdentity(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, "$1").replace(/[?#][^]*$/, "");
}

/**
 * A URL fit for logs and responses: its password and every query value are
 * replaced by `***`. A string that is not a URL is replaced entirely, since it
 * may be one with a typo that still holds a password.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "(not a URL)";
  }
  if (u.password) u.password = "***";
  if (u.search) {
    const query = new URLSearchParams(u.search);
    for (const key of new Set(query.keys())) query.set(key, "***");
    u.search = query.toString().replaceAll("%2A", "*");
  }
  return u.href;
}
