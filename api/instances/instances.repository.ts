import type { Pool } from 'pg';
import type { InstanceStatus } from '../../core/generated/prisma/enums.ts';

/**
 * The instance reads the dashboard polls, each one prepared statement whose JSON PostgreSQL
 * builds, so the API passes the text through without parsing or re-serialising it. Prisma's
 * `findMany` with these relations cost 14 ms of CPU per call here; see README, Performance.
 * The JSON is exactly the `Instance` / `InstanceDetail` schemas of api/openapi.yaml (tests
 * validate every response against them).
 */

const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const millis = (start: string, end: string) =>
  `case when ${end} is null then null else round(extract(epoch from ${end} - ${start}) * 1000)::int end`;

/** The summary fields of an instance `i` joined with its plan `p` and cluster `c`. */
const SUMMARY_FIELDS = `
  'id', i.id, 'organizationId', i."organizationId", 'domain', i.domain,
  'plan', json_build_object('code', p.code, 'name', p.name),
  'status', i.status, 'statusReason', i."statusReason",
  'dryRun', coalesce(c.target = 'dry_run', false),
  'cluster', case when c.id is null then null else json_build_object('name', c.name) end,
  'flavor', i.flavor, 'mastodonVersion', i."mastodonVersion",
  'addons', coalesce((select json_agg(a.code order by a.code) from "InstanceAddon" ia
                        join "AddonType" a on a.id = ia."addonTypeId" where ia."instanceId" = i.id), '[]'),
  'generation', i.generation, 'observedGeneration', i."observedGeneration",
  'createdAt', ${iso('i."createdAt"')}, 'updatedAt', ${iso('i."updatedAt"')}`;

/**
 * The condition "instance `i` is visible to the user in parameter `param`": staff see every
 * instance (the parameter null); anyone else those of organizations they belong to.
 */
export const visibleTo = (param: string) => `(${param}::uuid is null or exists (select 1 from "Membership" m
                   where m."organizationId" = i."organizationId" and m."userId" = ${param}::uuid))`;
const VISIBLE = visibleTo('$2');

/** An `Operation` of row `o` with its steps. */
const OPERATION = `json_build_object(
    'id', o.id, 'kind', o.kind, 'status', o.status, 'generation', o.generation, 'error', o.error,
    'startedAt', ${iso('o."startedAt"')}, 'finishedAt', ${iso('o."finishedAt"')},
    'durationMs', ${millis('o."startedAt"', 'o."finishedAt"')},
    'steps', coalesce((select json_agg(json_build_object(
        'name', s.name, 'outcome', s.outcome, 'attempt', s.attempt, 'detail', s.detail, 'error', s.error,
        'startedAt', ${iso('s."startedAt"')}, 'finishedAt', ${iso('s."finishedAt"')},
        'durationMs', ${millis('s."startedAt"', 's."finishedAt"')}) order by s."startedAt", s.id)
      from "OperationStep" s where s."operationId" = o.id), '[]'))`;

const DETAIL = `
  select json_build_object(${SUMMARY_FIELDS},
    'deleteAfter', ${iso('i."deleteAfter"')},
    'operations', coalesce((select json_agg(${OPERATION} order by o."startedAt", o.id)
      from (select * from "Operation" where "instanceId" = i.id order by "startedAt" desc, id desc limit 10) o), '[]'),
    'events', coalesce((select json_agg(json_build_object(
        'id', e.id::text, 'type', e.type, 'message', e.message, 'createdAt', ${iso('e."createdAt"')}) order by e.id)
      from (select * from "Event" where "instanceId" = i.id order by id desc limit 100) e), '[]')
  )::text as json, i.generation
  from "Instance" i join "Plan" p on p.id = i."planId" left join "Cluster" c on c.id = i."clusterId"
  where i.id = $1 and ${VISIBLE}`;

const MANIFESTS = `
  select coalesce((select json_agg(d.manifest order by d.position, d.id)
    from "DryRunObject" d where d."instanceId" = i.id), '[]')::text as json
  from "Instance" i where i.id = $1 and ${VISIBLE}`;

/** The instance's add-on stack (null fields when it has none). */
const ADDON_STACK = `
  select json_build_object(
    'stackName', s."stackName", 'state', coalesce(s.state, 'none'),
    'resources', coalesce(s.resources, '[]'::jsonb), 'outputs', coalesce(s.outputs, '{}'::jsonb),
    'changes', coalesce(s.changes, '{}'::jsonb), 'updatedAt', s."updatedAt")::text as json
  from "Instance" i left join "AddonStack" s on s."instanceId" = i.id
  where i.id = $1 and ${VISIBLE}`;

/** Operations newest first, after the keyset ($3, $4); null when the instance is not visible. */
const OPERATIONS = `
  select i.id as "instanceId", o.json, o."startedAt", o.id
    from "Instance" i
    left join lateral (select ${OPERATION}::text as json, o."startedAt", o.id from "Operation" o
       where o."instanceId" = i.id and ($3::timestamptz is null or (o."startedAt", o.id) < ($3, $4::uuid))
       order by o."startedAt" desc, o.id desc limit $5) o on true
   where i.id = $1 and ${VISIBLE}
   order by o."startedAt" desc, o.id desc`;

const OPERATION_BY_ID = `
  select ${OPERATION}::text as json
    from "Operation" o join "Instance" i on i.id = o."instanceId"
   where o.id = $1 and ${VISIBLE}`;

const LIST = `
  select json_build_object(${SUMMARY_FIELDS})::text as json, i."createdAt", i.id
    from "Instance" i join "Plan" p on p.id = i."planId" left join "Cluster" c on c.id = i."clusterId"
   where ($1::text is null or i.status::text = $1) and ${VISIBLE}
     and ($4::text is null or p.code = $4)
     and ($5::text is null or c.name = $5)
     and ($6::text is null or i.domain like '%' || $6 || '%' escape '\\')
     and ($7::timestamptz is null or (i."createdAt", i.id) < ($7, $8::uuid))
   order by i."createdAt" desc, i.id desc
   limit $3`;

/** The instance as `InstanceDetail` JSON text with its generation, or null when missing or not visible. */
export async function findInstanceDetailJson(
  pool: Pool,
  instanceId: string,
  memberUserId: string | null,
): Promise<{ json: string; generation: number } | null> {
  const { rows } = await pool.query<{ json: string; generation: number }>({
    name: 'instance-detail',
    text: DETAIL,
    values: [instanceId, memberUserId],
  });
  return rows[0] ?? null;
}

/** The applied objects of the instance as a JSON array, or null when missing or not visible. */
export async function findInstanceManifestsJson(
  pool: Pool,
  instanceId: string,
  memberUserId: string | null,
): Promise<string | null> {
  const { rows } = await pool.query<{ json: string }>({
    name: 'instance-manifests',
    text: MANIFESTS,
    values: [instanceId, memberUserId],
  });
  return rows[0]?.json ?? null;
}

/** The instance's add-on stack as JSON, or null when the instance is missing or not visible. */
export async function findAddonStackJson(
  pool: Pool,
  instanceId: string,
  memberUserId: string | null,
): Promise<string | null> {
  const { rows } = await pool.query<{ json: string }>({
    name: 'instance-addon-stack',
    text: ADDON_STACK,
    values: [instanceId, memberUserId],
  });
  return rows[0]?.json ?? null;
}

/**
 * A page of the instance's `Operation`s, newest first, as JSON texts with the keyset of each;
 * null when the instance is missing or not visible.
 */
export async function listOperationRows(
  pool: Pool,
  instanceId: string,
  memberUserId: string | null,
  page: { limit: number; after: { createdAt: Date; id: string } | undefined },
): Promise<{ json: string; createdAt: Date; id: string }[] | null> {
  const { rows } = await pool.query<{ instanceId: string; json: string | null; startedAt: Date; id: string }>(
    {
      name: 'instance-operations',
      text: OPERATIONS,
      values: [instanceId, memberUserId, page.after?.createdAt ?? null, page.after?.id ?? null, page.limit],
    },
  );
  if (rows.length === 0) return null;
  return rows.flatMap((row) =>
    row.json === null ? [] : [{ json: row.json, createdAt: row.startedAt, id: row.id }],
  );
}

/** One `Operation` as JSON text, or null when missing or its instance is not visible. */
export async function findOperationJson(
  pool: Pool,
  operationId: string,
  memberUserId: string | null,
): Promise<string | null> {
  const { rows } = await pool.query<{ json: string }>({
    name: 'operation',
    text: OPERATION_BY_ID,
    values: [operationId, memberUserId],
  });
  return rows[0]?.json ?? null;
}

export interface InstanceListFilter {
  memberUserId: string | null;
  status: InstanceStatus | undefined;
  plan: string | undefined;
  cluster: string | undefined;
  /** Part of the domain. */
  search: string | undefined;
  limit: number;
  /** Continue after this row (the last of the previous page). */
  after: { createdAt: Date; id: string } | undefined;
}

/** A page of `Instance` summaries, newest first, as JSON texts with the keyset of each. */
export async function listInstanceSummaries(
  pool: Pool,
  filter: InstanceListFilter,
): Promise<{ json: string; createdAt: Date; id: string }[]> {
  const like = filter.search?.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
  const { rows } = await pool.query<{ json: string; createdAt: Date; id: string }>({
    name: 'instance-list',
    text: LIST,
    values: [
      filter.status ?? null,
      filter.memberUserId,
      filter.limit,
      filter.plan ?? null,
      filter.cluster ?? null,
      like ?? null,
      filter.after?.createdAt ?? null,
      filter.after?.id ?? null,
    ],
  });
  return rows;
}
