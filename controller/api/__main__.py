"""python -m controller.api --nb REMOTE --listen HOST:PORT: the API alone (tests)."""

from controller.api.app import main

main()
