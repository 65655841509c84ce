"""`python -m placebot.gpu_worker` starts a render worker of the distributed mode: the command
that owners' service units and docker-compose.yml run, kept stable while the code lives in
placebot/distributed/render_worker.py."""

import sys

from placebot.distributed.render_worker import main

if __name__ == "__main__":
    sys.exit(main())
