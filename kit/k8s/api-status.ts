/**
 * Reading client-node's failures: its generated APIs throw an `ApiException`
 * whose `code` is the HTTP status. Controllers branch on a few of them.
 */

/** The HTTP status of a failed API call, or undefined for other errors (network, bugs). */
export function statusOf(err: unknown): number | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "number" ? code : undefined;
  }
  return undefined;
}

export const isNotFound = (err: unknown): boolean => statusOf(err) === 404;

/** 409: a compare-and-swap lost (stale resourceVersion) or the object already exists. */
export const isConflict = (err: unknown): boolean => statusOf(err) === 409;
