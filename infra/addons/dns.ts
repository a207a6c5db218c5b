/**
 * The DNS an instance needs in Woolly's Route 53 zone: its own name when the domain is in the
 * zone, or, for a community's own domain, a name in the zone the community points its domain
 * at. A Pulumi program (@pulumi/aws) taking an explicit provider; tested with mocks.
 *
 * Route 53 records cannot be tagged (only zones and health checks can), so these carry no
 * owner tags; the policy rules exempt their type, and the record names say whose they are.
 */
import * as aws from '@pulumi/aws';
import { AppError } from '../../core/errors.ts';
import type { AwsResourceOptions } from './aws.ts';
import type { AddonOwner, AwsAddonSettings, DnsOutputs, Wired } from './types.ts';

const TTL_SECONDS = 300;

const normalised = (name: string) => name.toLowerCase().replace(/\.$/, '');

export function dnsRecords(
  owner: AddonOwner,
  input: { domain: string; settings: NonNullable<AwsAddonSettings['dns']> },
  opts: AwsResourceOptions,
) {
  const domain = normalised(input.domain);
  const zone = normalised(input.settings.zoneName);
  const options = { provider: opts.provider };
  const cname = (resourceName: string, fqdn: string) =>
    new aws.route53.Record(
      resourceName,
      {
        zoneId: input.settings.zoneId,
        name: fqdn,
        type: 'CNAME',
        ttl: TTL_SECONDS,
        records: [input.settings.ingressHostname],
      },
      options,
    );

  if (domain === zone) {
    // A CNAME cannot sit at a zone apex, and the apex is Woolly's own name, not a server's.
    throw new AppError('unprocessable', `${domain} is the zone itself; a server needs a name under it`);
  }
  const inZone = domain.endsWith(`.${zone}`);
  const fqdn = inZone ? domain : `${owner.namespace}.${zone}`;
  const record = cname(inZone ? 'domain' : 'custom-domain-target', fqdn);
  const outputs: Wired<DnsOutputs> = {
    records: [`${fqdn} CNAME ${input.settings.ingressHostname}`],
    target: inZone ? null : fqdn,
  };
  return { resources: { record }, outputs };
}
