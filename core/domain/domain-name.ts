import { AppError } from '../errors.ts';

/** Names customers may not take under the base domain: they belong to the host itself. */
const RESERVED = new Set([
  'admin',
  'api',
  'app',
  'assets',
  'auth',
  'billing',
  'blog',
  'cdn',
  'dashboard',
  'dev',
  'docs',
  'ftp',
  'help',
  'imap',
  'login',
  'mail',
  'media',
  'ns1',
  'ns2',
  'ops',
  'pop',
  'smtp',
  'staff',
  'static',
  'status',
  'support',
  'test',
  'www',
  'woolly',
]);

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Checks a requested server domain and returns it normalised (lower case, no trailing dot).
 * It must be an RFC 1123 host name of the form `<name>.<baseDomain>` with a name that is not
 * reserved. Custom domains come with their verification (see issue on the REST API).
 */
export function normaliseServerDomain(input: string, baseDomain: string): string {
  const invalid = (message: string) =>
    new AppError('validation_failed', message, { errors: [{ field: 'domain', message }] });
  // Checked before lower-casing: some non-ASCII letters (the Kelvin sign) lower-case to ASCII.
  if (!/^[\x20-\x7e]*$/.test(input))
    throw invalid('The domain must be written in ASCII (use punycode for IDNs).');
  const domain = input.trim().toLowerCase().replace(/\.$/, '');
  if (domain.length === 0 || domain.length > 253)
    throw invalid('The domain must be 1 to 253 characters long.');
  const labels = domain.split('.');
  if (!labels.every((label) => LABEL.test(label))) {
    throw invalid(
      'The domain must be a host name: letters, digits and hyphens, labels of 1 to 63 characters, not starting or ending with a hyphen.',
    );
  }
  const suffix = `.${baseDomain}`;
  if (!domain.endsWith(suffix) || domain.slice(0, -suffix.length).includes('.')) {
    throw invalid(
      `The domain must be a name directly under ${baseDomain}, such as mycommunity.${baseDomain}.`,
    );
  }
  const name = domain.slice(0, -suffix.length);
  if (RESERVED.has(name)) throw invalid(`The name "${name}" is reserved; choose another.`);
  return domain;
}
