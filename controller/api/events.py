"""What the running controller saw: firewall log events and rule hit counters."""

from controller.validation import Problem


class Events:
    """GET /v1/events and a rule's statistics (a part of Api)."""

    def rule_stats(self, req, caller, id, rule_id):
        """Hit counters of a rule: packets of new connections it decided, and
        packets of the established connections it let in, on every switch."""
        group = self._find("SecurityGroup", id, caller)
        if rule_id not in [str(r.uuid) for r in group.rules]:
            raise Problem(404, "Not found", "no rule %s in security group %s" % (rule_id, id))
        if self.stats is None:
            raise Problem(503, "Unavailable", "statistics come from the running controller (dvn serve)")
        return 200, self.stats(str(group.uuid), rule_id)

    def list_events(self, req, caller):
        """Recent firewall log events (newest first), of the caller's ports and
        groups; filter with ?port=<id> and ?rule=<id>; ?limit= (default 100)."""
        q = self._filter(req, ("port", "rule", "limit"))
        limit = q.get("limit", 100)
        if self.events is None:
            raise Problem(503, "Unavailable", "events come from the running controller (dvn serve)")
        out = []
        for event in reversed(self.events):
            if "port" in q and event.get("port") != q["port"]:
                continue
            if "rule" in q and event.get("rule") != q["rule"]:
                continue
            group = self.nb.get("SecurityGroup", event["security_group"]) if event.get("security_group") else None
            if group is None or not caller.sees(group):
                continue
            out.append(event)
            if len(out) >= limit:
                break
        return 200, out

