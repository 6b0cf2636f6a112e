"""`dvn serve`: the controller process (written by the controller owner)."""


def register(subparsers):
    p = subparsers.add_parser("serve", help="run the dvn controller")
    p.set_defaults(func=lambda args: print("not yet"))
    return p
