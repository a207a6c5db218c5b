import { PrismaPg } from '@prisma/adapter-pg';
import { defineConfig } from 'prisma/config';

// The CLI must always see a connection string: without the driver adapter it falls back to
// downloading a native engine, which these machines cannot. The npm scripts set it.
const connectionString = process.env.DATABASE_URL ?? 'postgresql://localhost:5432/woolly';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  experimental: { adapter: true },
  engine: 'js',
  adapter: async () => new PrismaPg({ connectionString }),
});
