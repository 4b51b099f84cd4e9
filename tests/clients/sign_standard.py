"""Signs payloads with the official `standardwebhooks` package.

stdin: JSON array of {secret, id, payload, timestamp}; stdout: JSON array of
webhook-signature header values, in the same order.
"""

import json
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

cases = json.load(sys.stdin)
signatures = [
    Webhook(case["secret"]).sign(
        case["id"],
        datetime.fromtimestamp(case["timestamp"], tz=timezone.utc),
        case["payload"],
    )
    for case in cases
]
json.dump(signatures, sys.stdout)
