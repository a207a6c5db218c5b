import { domainToASCII, domainToUnicode } from 'node:url';
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
const LATIN = /\p{Script=Latin}/u;
const LOOKALIKE_SCRIPTS = /[\p{Script=Cyrillic}\p{Script=Greek}]/u;

/** A refused host name, as a validation failure of `field`. */
export function invalidHostname(field: string, message: string): AppError {
  return new AppError('validation_failed', message, { errors: [{ field, message }] });
}

/**
 * Checks that `input` is an RFC 1123 host name and returns it normalised (lower case, no
 * trailing dot); refusals name `field`. Only ASCII is taken, IDNs as punycode: an `xn--`
 * label must decode, and may not mix Latin letters with Cyrillic or Greek ones, the usual
 * lookalike of a known name (`pаypal` with a Cyrillic а).
 */
export function normaliseHostname(input: string, field: string): string {
  // Checked before lower-casing: some non-ASCII letters (the Kelvin sign) lower-case to ASCII.
  if (!/^[\x20-\x7e]*$/.test(input))
    throw invalidHostname(field, `The ${field} must be written in ASCII (use punycode for IDNs).`);
  const domain = input.trim().toLowerCase().replace(/\.$/, '');
  if (domain.length === 0 || domain.length > 253)
    throw invalidHostname(field, `The ${field} must be 1 to 253 characters long.`);
  const labels = domain.split('.');
  if (!labels.every((label) => LABEL.test(label))) {
    throw invalidHostname(
      field,
      `The ${field} must be a host name: letters, digits and hyphens, labels of 1 to 63 characters, not starting or ending with a hyphen.`,
    );
  }
  for (const label of labels.filter((l) => l.startsWith('xn--'))) {
    const unicode = domainToUnicode(label);
    if (unicode === '' || domainToASCII(unicode) !== label)
      throw invalidHostname(field, `The label "${label}" is not valid punycode.`);
    if (LATIN.test(unicode) && LOOKALIKE_SCRIPTS.test(unicode)) {
      throw invalidHostname(
        field,
        `The label "${label}" (${unicode}) mixes Latin with Cyrillic or Greek letters, which makes it look like another name.`,
      );
    }
  }
  return domain;
}

/**
 * Checks a requested server domain and returns it normalised (lower case, no trailing dot).
 * It must be an RFC 1123 host name of the form `<name>.<baseDomain>` with a name that is not
 * reserved. Names outside the base domain are custom domains (core/domain/custom-domain.ts).
 */
export function normaliseServerDomain(input: string, baseDomain: string): string {
  const invalid = (message: string) => invalidHostname('domain', message);
  const domain = normaliseHostname(input, 'domain');
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
