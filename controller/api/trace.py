"""POST /v1/trace: dvn trace through the API (controller/trace.py)."""

from controller.api import schemas
from controller.validation import Problem, unprocessable


class Traces:
    def create_trace(self, req, caller):
        from controller import trace
        body = schemas.check("Trace", self.body(req))
        self._find("Port", body["from_port"], caller)     # (404 for another tenant's port)
        if self.tracer is None:
            raise Problem(404, "Not found", "no controller runs with this API: nothing to trace over")
        request = trace.Request(body["from_port"], body["dest"], body.get("protocol", "icmp"), body.get("port"),
                                body.get("established", False), body.get("member"))
        try:
            return 200, self.tracer(request)
        except trace.TraceError as exc:
            raise unprocessable(exc.field, str(exc))
