import type { Pool } from 'pg';
import { visibleTo } from '../instances/instances.repository.ts';

/**
 * The fleet summary as `FleetSummary` JSON text, counted and grouped in PostgreSQL in one
 * statement: the dashboard's home page asks for it, and staff see every server.
 */
const SUMMARY = `
  with visible as materialized (
    select i.status, i."planId", i."clusterId" from "Instance" i where ${visibleTo('$1')})
  select json_build_object(
    'total', (select count(*) from visible),
    'byStatus', (select json_object_agg(s.status, coalesce(n.count, 0) order by s.status)
                   from unnest(enum_range(null::"InstanceStatus")) s(status)
                   left join (select status, count(*) from visible group by status) n on n.status = s.status),
    'byPlan', coalesce((select json_agg(json_build_object('code', p.code, 'name', p.name, 'count', n.count)
                                        order by p.code)
                          from (select "planId", count(*) from visible group by "planId") n
                          join "Plan" p on p.id = n."planId"), '[]'),
    'byCluster', coalesce((select json_agg(json_build_object('name', c.name, 'count', n.count, 'capacity', c.capacity)
                                           order by c.name nulls last)
                             from (select "clusterId", count(*) from visible group by "clusterId") n
                             left join "Cluster" c on c.id = n."clusterId"), '[]')
  )::text as json`;

/** Counts of the instances visible to `memberUserId` (null: all), as `FleetSummary` JSON. */
export async function findFleetSummaryJson(pool: Pool, memberUserId: string | null): Promise<string> {
  const { rows } = await pool.query<{ json: string }>({
    name: 'fleet-summary',
    text: SUMMARY,
    values: [memberUserId],
  });
  return (rows[0] as { json: string }).json;
}
