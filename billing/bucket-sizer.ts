/**
 * How big an object-storage bucket is: the adapter the storage sampler measures through, one
 * S3 ListObjectsV2 walk over the bucket summing object sizes, signed with AWS Signature
 * Version 4 (core/s3-signing.ts).
 */
import { type S3Credentials, signS3Get } from '../core/s3-signing.ts';

/** Where a bucket is and the key pair that may list it. */
export interface BucketTarget extends S3Credentials {
  /** The bucket's path-style URL: `<endpoint>/<bucket>` (or the route prefix it is served on). */
  url: string;
}

/** Measures buckets; the storage sampler's only view of object storage. */
export interface BucketSizer {
  /** The bucket's total size in bytes (every object, every page of the listing). */
  sizeOf(target: BucketTarget): Promise<number>;
}

/** A listing S3 answered with an error, or with something that is not a listing. */
export class BucketListingFailed extends Error {
  override name = 'BucketListingFailed';
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const unescapeXml = (value: string) =>
  value
    .replace(/&#(\d+);/g, (_, code) => String.fromCharCode(Number(code)))
    .replace(/&(amp|lt|gt|quot|apos);/g, (_, name) => XML_ENTITIES[name] ?? '');
const elementsOf = (xml: string, name: string) =>
  [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((match) =>
    unescapeXml(match[1] ?? ''),
  );

/** One page of a ListObjectsV2 answer: the bytes it lists and the token of the next page. */
function parseListing(xml: string): { bytes: number; next: string | null } {
  if (!xml.includes('<ListBucketResult')) throw new BucketListingFailed('the answer is not a bucket listing');
  const contents = [...xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map((match) => match[1] ?? '');
  const bytes = contents.reduce((sum, entry) => sum + Number(elementsOf(entry, 'Size')[0] ?? 0), 0);
  const truncated = elementsOf(xml, 'IsTruncated')[0] === 'true';
  const next = truncated ? (elementsOf(xml, 'NextContinuationToken')[0] ?? null) : null;
  if (truncated && !next) throw new BucketListingFailed('a truncated listing gave no continuation token');
  return { bytes, next };
}

/** The S3 error code of a failed answer (`AccessDenied`, `NoSuchBucket`...), when it names one. */
const errorCodeOf = (xml: string) => elementsOf(xml, 'Code')[0] ?? 'no error code';

/**
 * The real sizer: pages through ListObjectsV2 (`pageSize` keys a page, 1,000 by default, S3's
 * maximum) and sums `Size`. Fails on the first error answer, naming the bucket URL and S3's
 * error code, never the credentials.
 */
export function makeS3BucketSizer(
  options: { fetch?: typeof fetch; now?: () => Date; pageSize?: number; timeoutMs?: number } = {},
): BucketSizer {
  const get = options.fetch ?? fetch;
  const now = options.now ?? (() => new Date());
  return {
    async sizeOf(target) {
      let bytes = 0;
      let token: string | null = null;
      do {
        const url = new URL(target.url);
        url.searchParams.set('list-type', '2');
        url.searchParams.set('max-keys', String(options.pageSize ?? 1000));
        if (token) url.searchParams.set('continuation-token', token);
        const response = await get(url, {
          headers: signS3Get(url, target, now()),
          signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        });
        const body = await response.text();
        if (!response.ok) {
          throw new BucketListingFailed(
            `listing ${target.url} failed: HTTP ${response.status} (${errorCodeOf(body)})`,
          );
        }
        const page = parseListing(body);
        bytes += page.bytes;
        token = page.next;
      } while (token);
      return bytes;
    },
  };
}
