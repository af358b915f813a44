"""Scrapes a Prometheus endpoint over HTTP and prints, as one JSON object, what the Prometheus
project's own Python parser (prometheus_client.parser) makes of it.

Usage: scrape.py URL

Output: {"status": 200, "contentType": "...", "families": [{"name", "type", "help",
"samples": [{"name", "labels", "value"}]}]}. A response the parser rejects exits 1 with the
parser's error and the offending text on stderr.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=10) as response:
        status = response.status
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode("utf-8")
    try:
        families = [
            {
                "name": f.name,
                "type": f.type,
                "help": f.documentation,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value}
                    for s in f.samples
                ],
            }
            for f in text_string_to_metric_families(text)
        ]
    except ValueError as e:
        print(f"the Prometheus parser rejected the exposition: {e}\n{text}", file=sys.stderr)
        return 1
    json.dump({"status": status, "contentType": content_type, "families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
