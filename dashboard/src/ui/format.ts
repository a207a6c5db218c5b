const dateTime = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
const date = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium' });

export const formatDateTime = (iso: string | null | undefined): string =>
  iso ? dateTime.format(new Date(iso)) : '—';

export const formatDate = (iso: string | null | undefined): string =>
  iso ? date.format(new Date(iso)) : '—';

/** Minor units of a currency as money: 1250, 'eur' → €12.50. */
export function formatMoney(minor: number, currency: string): string {
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency: currency.toUpperCase() }).format(
    minor / 100,
  );
}

/** A step's or an operation's length: 850 ms, 12.4 s, 3 min 5 s. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export const formatNumber = (value: number): string => new Intl.NumberFormat('en-GB').format(value);

/** `pending_payment` → `pending payment`. */
export const humanize = (code: string): string => code.replaceAll('_', ' ');

const METER_TITLES: Record<string, string> = {
  storage_gb_hours: 'Media storage',
  search_hours: 'Search',
  active_users: 'Monthly active users',
};

/** A usage meter's name for people: `storage_gb_hours` → Media storage. */
export const meterTitle = (meter: string): string => METER_TITLES[meter] ?? humanize(meter);
