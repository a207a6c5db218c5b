import { z } from 'zod';

/** The shared services a cluster offers its instances; stored on the Cluster row. */
export const clusterSettingsSchema = z.object({
  databaseHost: z.string().default('postgres.woolly-system.svc.cluster.local'),
  databasePort: z.number().int().default(5432),
  smtpServer: z.string().default('smtp.woolly-system.svc.cluster.local'),
  smtpPort: z.number().int().default(587),
  ingressClassName: z.string().default('nginx'),
  clusterIssuer: z.string().default('letsencrypt'),
});

export type ClusterSettings = z.output<typeof clusterSettingsSchema>;

export function parseClusterSettings(value: unknown): ClusterSettings {
  return clusterSettingsSchema.parse(value ?? {});
}
