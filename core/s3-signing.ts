/**
 * AWS Signature Version 4 for S3, by hand (node:crypto): the one implementation Woolly signs S3
 * requests with, in two forms. `signS3Get` signs a GET in headers (the storage sampler's bucket
 * listings); `presignS3Get` signs it in the query string, so a plain link may fetch the object
 * until it expires (backup downloads). A couple of requests do not earn an SDK dependency; both
 * are checked against AWS's published examples.
 */
import { createHash, createHmac } from 'node:crypto';

/** The key pair that signs, and the region it signs for. */
export interface S3Credentials {
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');
/** What a presigned URL signs for its body: the body is not known when the link is made. */
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** The longest a presigned URL may live (SigV4's limit: seven days). */
const MAX_EXPIRES_SECONDS = 604_800;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');
const hmac = (key: Buffer | string, value: string) => createHmac('sha256', key).update(value).digest();

/** RFC 3986 encoding, as SigV4 wants it: everything but `A-Z a-z 0-9 - _ . ~` escaped. */
const encode = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** `20130524T000000Z` */
const amzDateOf = (at: Date) =>
  at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

/** The query string as SigV4 signs it: each name and value encoded, sorted by name, then value. */
const canonicalQuery = (params: URLSearchParams) =>
  [...params.entries()]
    .map(([name, value]) => [encode(name), encode(value)] as const)
    .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');

/**
 * The signature of a canonical request: the string to sign over its hash and the scope, with
 * the key derived from the secret for the day, region and `s3`. The path is signed as the URL
 * already encodes it.
 */
function signatureOf(
  credentials: S3Credentials,
  amzDate: string,
  request: { url: URL; query: string; headers: [string, string][]; payloadHash: string },
): string {
  const day = amzDate.slice(0, 8);
  const canonicalRequest = [
    'GET',
    request.url.pathname || '/',
    request.query,
    ...request.headers.map(([name, value]) => `${name}:${value}`),
    '',
    request.headers.map(([name]) => name).join(';'),
    request.payloadHash,
  ].join('\n');
  const stringToSign = [ALGORITHM, amzDate, scopeOf(day, credentials.region), sha256(canonicalRequest)].join(
    '\n',
  );
  const key = ['s3', 'aws4_request'].reduce(
    (derived, part) => hmac(derived, part),
    hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), credentials.region),
  );
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}

const scopeOf = (day: string, region: string) => `${day}/${region}/s3/aws4_request`;

/**
 * The headers that sign a GET of `url` with SigV4 for S3 (`host`, `x-amz-content-sha256` of an
 * empty body, `x-amz-date`, `authorization`).
 */
export function signS3Get(url: URL, credentials: S3Credentials, at: Date): Record<string, string> {
  const amzDate = amzDateOf(at);
  const headers: [string, string][] = [
    ['host', url.host],
    ['x-amz-content-sha256', EMPTY_SHA256],
    ['x-amz-date', amzDate],
  ];
  const signature = signatureOf(credentials, amzDate, {
    url,
    query: canonicalQuery(url.searchParams),
    headers,
    payloadHash: EMPTY_SHA256,
  });
  const scope = scopeOf(amzDate.slice(0, 8), credentials.region);
  return {
    'x-amz-content-sha256': EMPTY_SHA256,
    'x-amz-date': amzDate,
    authorization: `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${headers.map(([name]) => name).join(';')}, Signature=${signature}`,
  };
}

/**
 * `url` presigned for a GET with SigV4 in its query string (AWS's "Authenticating Requests:
 * Using Query Parameters"): valid from `at` for `expiresInSeconds`, signing only `host`. The URL
 * carries the access key id and the signature, never the secret.
 */
export function presignS3Get(url: URL, credentials: S3Credentials, at: Date, expiresInSeconds: number): URL {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_EXPIRES_SECONDS) {
    throw new RangeError(
      `a presigned URL lives 1 to ${MAX_EXPIRES_SECONDS} seconds, not ${expiresInSeconds}`,
    );
  }
  const amzDate = amzDateOf(at);
  const presigned = new URL(url);
  presigned.searchParams.set('X-Amz-Algorithm', ALGORITHM);
  presigned.searchParams.set(
    'X-Amz-Credential',
    `${credentials.accessKeyId}/${scopeOf(amzDate.slice(0, 8), credentials.region)}`,
  );
  presigned.searchParams.set('X-Amz-Date', amzDate);
  presigned.searchParams.set('X-Amz-Expires', String(expiresInSeconds));
  presigned.searchParams.set('X-Amz-SignedHeaders', 'host');
  const signature = signatureOf(credentials, amzDate, {
    url: presigned,
    query: canonicalQuery(presigned.searchParams),
    headers: [['host', presigned.host]],
    payloadHash: UNSIGNED_PAYLOAD,
  });
  presigned.searchParams.set('X-Amz-Signature', signature);
  return presigned;
}

/**
 * The path-style URL of an object, `<endpoint>/<bucket>/<key>`, each key segment encoded as
 * SigV4 signs it (so the path a signer reads is the canonical one).
 */
export function s3ObjectUrl(endpoint: string, bucket: string, key: string): URL {
  const base = endpoint.replace(/\/+$/, '');
  return new URL(`${base}/${encode(bucket)}/${key.split('/').map(encode).join('/')}`);
}
