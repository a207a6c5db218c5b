import type { Pool } from 'pg';
import { latestRevision, METERS, type Meter } from '../../billing/metering.ts';
import type { ReportRange } from '../../billing/reports.ts';

/**
 * The ledger's totals per meter and UTC day: the latest revision of each bucket only, grouped
 * in PostgreSQL. One server's read uses the ledger's (instance, meter, time) index; the
 * fleet's reads every entry of the range.
 */
const DAILY = `
  select e.meter, to_char(e."occurredAt" at time zone 'UTC', 'YYYY-MM-DD') as date,
         sum(e.quantity)::float8 as quantity
    from "UsageEvent" e
   where e."occurredAt" >= $1 and e."occurredAt" < $2 and e.meter = any($3::text[])
     and ($4::uuid is null or e."instanceId" = $4::uuid)
     and ${latestRevision('e')}
   group by 1, 2`;

export interface DailyTotal {
  meter: Meter;
  /** `YYYY-MM-DD`, UTC. */
  date: string;
  quantity: number;
}

/** Days of the range with usage, per meter: one server's (`instanceId`) or the fleet's (null). */
export async function listDailyUsage(
  pool: Pool,
  range: ReportRange,
  instanceId: string | null,
): Promise<DailyTotal[]> {
  const { rows } = await pool.query<DailyTotal>({
    name: 'usage-daily',
    text: DAILY,
    values: [range.start, range.end, Object.keys(METERS), instanceId],
  });
  return rows;
}
