import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { getInvoice, listOrganizationInvoices, markInvoicePaid } from './invoices.service.ts';

export function invoicesHandlers(
  deps: ApiDeps,
): Pick<OperationHandlers, 'listOrganizationInvoices' | 'getInvoice' | 'markInvoicePaid'> {
  return {
    async listOrganizationInvoices(req, res, { params, query }) {
      res.json(await listOrganizationInvoices(deps, requestContext(req), params.id, query));
    },
    async getInvoice(req, res, { params }) {
      res.json(await getInvoice(deps, requestContext(req), params.id));
    },
    async markInvoicePaid(req, res, { params }) {
      res.json(await markInvoicePaid(deps, requestContext(req), params.id));
    },
  };
}
