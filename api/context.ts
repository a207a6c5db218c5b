import type { Pool } from 'pg';
import type { StripeGateway } from '../billing/stripe-gateway.ts';
import type { Config } from '../core/config.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import type { Mailer } from './auth/mailer.ts';

/** What the API's routes and services are built from. */
export interface ApiDeps {
  db: Db;
  /** Plain pg for hot read paths (the repositories); everything else goes through `db`. */
  pool: Pool;
  config: Config;
  log: Logger;
  /** Where account mail goes; unset: the dev outbox (api/auth/mailer.ts). */
  mailer?: Mailer;
  /**
   * Stripe, for checkout and sponsorships; unset: `makeApp` builds it once from `config.stripe`
   * (none without it). Tests put the stateful stand-in or a gateway over stripe-mock here.
   */
  stripeGateway?: StripeGateway;
  /**
   * The endpoint a backup download link points at for a cluster's backup bucket; unset: the
   * bucket's own `endpoint` (cluster settings `backups`). Tests route it to gofakes3, which
   * serves plain HTTP where the settings take only https.
   */
  backupEndpointOf?: (storage: { bucket: string; endpoint: string }) => string;
}

/** Token scopes; `admin` implies every other. */
export const SCOPES = ['instances:read', 'instances:write', 'billing:read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** Who is calling, as established by authentication. */
export interface Actor {
  userId: string;
  email: string;
  staffRole: 'ops' | 'admin' | null;
  scopes: readonly Scope[];
  /** An API token, or a signed-in session (cookie), which also needs a CSRF token to change things. */
  authMethod: 'token' | 'session';
  /** The API token used; null for a session. */
  tokenId: string | null;
}

/** Per-request facts a service needs: the caller and the ids to log and audit with. */
export interface RequestContext {
  actor: Actor;
  requestId: string;
  log: Logger;
}
