"""``python -m aimo_submit.sandbox``: print which protections this host grants."""

from aimo_submit.sandbox import probe_protections

for name, state in probe_protections().items():
    print(f"{name:16} {state}")
