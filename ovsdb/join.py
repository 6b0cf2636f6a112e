"""`dvn join` / `dvn leave`: run on a node (written by the controller owner)."""


def register(subparsers):
    p = subparsers.add_parser("join", help="join this node to a dvn controller")
    p.set_defaults(func=lambda args: print("not yet"))
    return p
