/** Mastodon release tags as Woolly pins them: `v4.5.11`. */
const TAG = /^v(\d+)\.(\d+)\.(\d+)$/;

function parts(tag: string): [number, number, number] {
  const match = TAG.exec(tag);
  if (!match) throw new Error(`not a Mastodon release tag: ${tag}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/**
 * Negative when `a` is older than `b`, zero when equal, positive when newer. Mastodon's
 * database migrations only run forward, so a server may move to a newer tag only.
 */
export function compareMastodonVersions(a: string, b: string): number {
  const [left, right] = [parts(a), parts(b)];
  for (let index = 0; index < 3; index += 1) {
    const difference = (left[index] as number) - (right[index] as number);
    if (difference !== 0) return difference;
  }
  return 0;
}
