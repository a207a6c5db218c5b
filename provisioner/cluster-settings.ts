import { z } from 'zod';

/** Where a cluster's add-ons run: in the cluster itself, or in a cloud account (AWS). */
const addonSettingsSchema = z.discriminatedUnion('provider', [
  z.object({ provider: z.literal('in-cluster') }),
  z.object({
    provider: z.literal('aws'),
    aws: z.object({
      region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1'),
      s3Endpoint: z.url({ protocol: /^https$/ }).optional(),
      cdnHost: z.string().min(1).optional(),
      /** The cluster's egress addresses: the only ones the search endpoint answers. */
      egressCidrs: z.array(z.cidrv4().or(z.cidrv6())).min(1).optional(),
      dns: z
        .object({
          zoneId: z.string().min(1),
          zoneName: z.string().min(1),
          ingressHostname: z.string().min(1),
        })
        .optional(),
    }),
  }),
]);

/** The shared services a cluster offers its instances; stored on the Cluster row. */
export const clusterSettingsSchema = z.object({
  databaseHost: z.string().default('postgres.woolly-system.svc.cluster.local'),
  databasePort: z.number().int().default(5432),
  smtpServer: z.string().default('smtp.woolly-system.svc.cluster.local'),
  smtpPort: z.number().int().default(587),
  ingressClassName: z.string().default('nginx'),
  clusterIssuer: z.string().default('letsencrypt'),
  /** Where backups go: an S3-compatible bucket; its access key is sealed apart. */
  backups: z
    .object({
      bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
      endpoint: z.url({ protocol: /^https$/ }),
      region: z.string().min(1),
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9._/-]{1,200}$/)
        .default('woolly-backups'),
    })
    .optional(),
  addons: addonSettingsSchema.default({ provider: 'in-cluster' }),
});

export type ClusterSettings = z.output<typeof clusterSettingsSchema>;

export function parseClusterSettings(value: unknown): ClusterSettings {
  return clusterSettingsSchema.parse(value ?? {});
}
