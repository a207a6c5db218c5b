import { useState } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { type Action, useAction, useQuery } from '../../data.ts';
import { type Role, roleIn, useSession, useSignedIn } from '../../session.tsx';
import { ConfirmDialog } from '../../ui/dialog.tsx';
import { ProblemAlert } from '../../ui/feedback.tsx';
import { formatDate } from '../../ui/format.ts';
import { type Membership, OrganizationPage, PageHead, ROLES, RoleSelect, Table } from './common.tsx';
import { Invitations } from './invitations.tsx';

type Member = Schemas['Member'];

function MemberRow({
  member,
  owner,
  self,
  action,
  onSave,
  onRemove,
}: {
  member: Member;
  owner: boolean;
  self: boolean;
  action: Action;
  onSave: (role: Role) => void;
  onRemove: () => void;
}) {
  const [role, setRole] = useState<Role>(member.role);
  const selectId = `role-${member.userId}`;
  return (
    <tr>
      <td>
        {member.name ?? member.email}
        {member.name ? <div className="hint">{member.email}</div> : null}
      </td>
      <td>
        {owner ? (
          <span className="actions">
            <label htmlFor={selectId} className="visually-hidden">
              Role of {member.email}
            </label>
            <RoleSelect id={selectId} value={role} onChange={setRole} roles={ROLES} />
            <button type="button" disabled={role === member.role || action.busy} onClick={() => onSave(role)}>
              {action.busy ? 'Saving…' : 'Save role'}
            </button>
          </span>
        ) : (
          member.role
        )}
      </td>
      <td>{formatDate(member.joinedAt)}</td>
      <td>
        {owner || self ? (
          <button
            type="button"
            onClick={onRemove}
            aria-label={`${self ? 'Leave' : 'Remove'}: ${member.email}`}
          >
            {self ? 'Leave' : 'Remove'}
          </button>
        ) : null}
      </td>
    </tr>
  );
}

function Members({ membership }: { membership: Membership }) {
  const session = useSignedIn();
  const { refresh } = useSession();
  const id = membership.organizationId;
  const role = roleIn(session, id);
  const owner = role === 'owner' || role === 'staff';
  const inviter = owner || role === 'admin';
  const members = useQuery(
    () => ok(api.GET('/v1/organizations/{id}/members', { params: { path: { id } } })),
    [id],
  );
  const action = useAction();
  const [removing, setRemoving] = useState<Member>();
  const change = (work: () => Promise<unknown>) => action.run(work).then((done) => done && members.reload());

  const remove = async (member: Member) => {
    setRemoving(undefined);
    const self = member.userId === session.user.id;
    await change(() =>
      ok(
        api.DELETE('/v1/organizations/{id}/members/{userId}', {
          params: { path: { id, userId: member.userId } },
        }),
      ),
    );
    if (self) await refresh();
  };

  return (
    <>
      <ProblemAlert problem={action.error} />
      <h2>Members</h2>
      <Table
        label="Members"
        columns={['Name', 'Role', 'Joined', 'Actions']}
        rows={members.data?.data}
        problem={members.error}
        empty="No members."
        row={(member) => (
          <MemberRow
            key={`${member.userId}:${member.role}`}
            member={member}
            owner={owner}
            self={member.userId === session.user.id}
            action={action}
            onSave={(next) =>
              change(() =>
                ok(
                  api.PATCH('/v1/organizations/{id}/members/{userId}', {
                    params: { path: { id, userId: member.userId } },
                    body: { role: next },
                  }),
                ),
              )
            }
            onRemove={() => setRemoving(member)}
          />
        )}
      />
      {removing ? (
        <ConfirmDialog
          title={
            removing.userId === session.user.id
              ? `Leave ${membership.organizationName}?`
              : `Remove ${removing.email}?`
          }
          confirmLabel={removing.userId === session.user.id ? 'Leave' : 'Remove'}
          danger
          onConfirm={() => remove(removing)}
          onClose={() => setRemoving(undefined)}
        >
          <p>They lose access to the organization's servers and invoices at once.</p>
        </ConfirmDialog>
      ) : null}
      {inviter ? <Invitations organizationId={id} owner={owner} /> : null}
    </>
  );
}

export default function MembersPage() {
  return (
    <OrganizationPage title="Members">
      {(membership) => (
        <>
          <PageHead title="Members">
            <span className="muted">{membership.organizationName}</span>
          </PageHead>
          <Members key={membership.organizationId} membership={membership} />
        </>
      )}
    </OrganizationPage>
  );
}
