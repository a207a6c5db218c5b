import pg from 'pg';

/**
 * Each server's own role and database on its cluster's PostgreSQL server, made through an
 * admin connection (a role with CREATEROLE and CREATEDB). DDL takes no bind parameters, so
 * names are checked against a strict pattern and quoted, and the password is quoted as a
 * literal; neither the password nor the statements that carry it are ever put in an error.
 */

const NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export interface InstanceDatabase {
  /** Role and database name (the same), e.g. `mastodon_3f2b9c4e1a7d`. */
  name: string;
  password: string;
  /** Connections the role may hold at once (the plan's `dbConnections`). */
  connectionLimit: number;
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new Error(`not a valid database or role name: ${JSON.stringify(name)}`);
}

async function withAdmin<T>(adminUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Runs DDL that carries a secret; a failure keeps the server's message, never the statement. */
async function runSecretDdl(client: pg.Client, text: string, what: string): Promise<void> {
  try {
    await client.query(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${what} failed: ${message}`);
  }
}

/**
 * Makes the role and database exist as described, whatever is there already: the role logs
 * in with `password`, may hold `connectionLimit` connections and nothing more (no superuser,
 * no CREATEDB, no CREATEROLE); the database is the role's and no one else may connect to it.
 * Safe to repeat; a changed password or limit is applied.
 */
export async function ensureInstanceDatabase(
  adminUrl: string,
  database: InstanceDatabase,
): Promise<{ createdRole: boolean; createdDatabase: boolean }> {
  checkName(database.name);
  if (!Number.isInteger(database.connectionLimit) || database.connectionLimit < 1) {
    throw new Error(`connection limit must be a positive integer, got ${database.connectionLimit}`);
  }
  return withAdmin(adminUrl, async (client) => {
    const role = client.escapeIdentifier(database.name);
    const password = client.escapeLiteral(database.password);
    const { rowCount: roleExists } = await client.query('select 1 from pg_roles where rolname = $1', [
      database.name,
    ]);
    await runSecretDdl(
      client,
      `${roleExists ? 'alter' : 'create'} role ${role} with login nosuperuser nocreatedb nocreaterole noreplication
         connection limit ${database.connectionLimit} password ${password}`,
      `${roleExists ? 'updating' : 'creating'} role ${database.name}`,
    );
    const { rowCount: databaseExists } = await client.query('select 1 from pg_database where datname = $1', [
      database.name,
    ]);
    if (!databaseExists) await client.query(`create database ${role} owner ${role}`);
    await client.query(`revoke all on database ${role} from public`);
    return { createdRole: !roleExists, createdDatabase: !databaseExists };
  });
}

/** Drops the database (closing its connections) and then the role; absent ones are fine. */
export async function dropInstanceDatabase(adminUrl: string, name: string): Promise<void> {
  checkName(name);
  await withAdmin(adminUrl, async (client) => {
    const quoted = client.escapeIdentifier(name);
    await client.query(`drop database if exists ${quoted} with (force)`);
    await client.query(`drop role if exists ${quoted}`);
  });
}
