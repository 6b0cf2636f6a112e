"""Alert webhooks: /v1/alert-webhooks, one a tenant (controller/alerts.py
POSTs its firewall alerts there)."""

from controller.api import schemas
from controller.api.context import Context
from controller.validation import conflict


def webhook_view(row):
    return {"id": str(row.uuid), "tenant": row.tenant, "url": row.url}


class Webhooks:
    def list_webhooks(self, req, caller):
        self._filter(req, ())
        rows = [r for r in self.nb.rows("AlertWebhook") if caller.sees(r)]
        return 200, sorted((webhook_view(r) for r in rows), key=lambda w: w["tenant"])

    def create_webhook(self, req, caller):
        body = schemas.check("AlertWebhookCreate", self.body(req))
        tenant = Context(self.nb, caller).tenant_of_new(body)
        with self.lock:
            if any(r.tenant == tenant for r in self.nb.rows("AlertWebhook")):
                raise conflict("tenant", "tenant %s has an alert webhook already: delete it first" % tenant)
            uuid, = self._transact([self.nb.api.db_create("AlertWebhook", tenant=tenant, url=body["url"])], "tenant")
        return 201, webhook_view(self.nb.get("AlertWebhook", uuid))

    def delete_webhook(self, req, caller, id):
        with self.lock:
            row = self._find("AlertWebhook", id, caller)
            self._transact([self.nb.api.db_destroy("AlertWebhook", row.uuid)], "id")
        return 204, None
