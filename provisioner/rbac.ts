import { stringify } from 'yaml';

/** The ClusterRole the provisioner's identity needs, and nothing more. */
export const PROVISIONER_ROLE = 'woolly-provisioner';

/**
 * Plural resource names of the kinds the provisioner manages, by API group: the Namespace,
 * every kind in `INSTANCE_KINDS` (kubernetes.target.ts), and the StatefulSets of the in-cluster
 * add-ons (infra/addons/in-cluster.ts), which its Pulumi stacks create with the same identity.
 */
const RESOURCES: Record<string, string[]> = {
  '': [
    'namespaces',
    'secrets',
    'resourcequotas',
    'limitranges',
    'configmaps',
    'services',
    'persistentvolumeclaims',
  ],
  'networking.k8s.io': ['networkpolicies', 'ingresses'],
  apps: ['deployments', 'statefulsets'],
  batch: ['jobs', 'cronjobs'],
  policy: ['poddisruptionbudgets'],
  'cert-manager.io': ['certificates'],
};

/**
 * RBAC for the provisioner: it creates and server-side applies each server's objects, lists
 * them by label to prune, reads Deployment and Job status, and deletes namespaces. It needs no
 * access to pods, nodes, RBAC itself or any cluster-wide object but namespaces. RBAC cannot
 * scope a rule to namespaces by name prefix, so the rules hold cluster-wide; the provisioner
 * itself only ever touches namespaces labelled with an instance id.
 */
export function provisionerRbac(subject: {
  kind: 'User' | 'ServiceAccount';
  name: string;
  namespace?: string;
}) {
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: PROVISIONER_ROLE, labels: { 'app.kubernetes.io/part-of': 'woolly' } },
      rules: Object.entries(RESOURCES).map(([group, resources]) => ({
        apiGroups: [group],
        resources,
        verbs: ['get', 'list', 'create', 'patch', 'update', 'delete'],
      })),
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: PROVISIONER_ROLE, labels: { 'app.kubernetes.io/part-of': 'woolly' } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: PROVISIONER_ROLE },
      subjects: [
        subject.kind === 'ServiceAccount'
          ? { kind: 'ServiceAccount', name: subject.name, namespace: subject.namespace ?? 'woolly-system' }
          : { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: subject.name },
      ],
    },
  ];
}

/** The RBAC objects as one YAML stream, for `kubectl apply -f -`. */
export function provisionerRbacYaml(subject: Parameters<typeof provisionerRbac>[0]): string {
  return provisionerRbac(subject)
    .map((object) => stringify(object))
    .join('---\n');
}
