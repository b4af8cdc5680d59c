"""Throttle replication of driftline.features on misc40's three-node cluster (ports 14092/14094/14096) to 50 KB/s,
or remove the throttle with `off`: docs/experiments/misc40.md, item 1."""

import sys

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

a = AdminClient({"bootstrap.servers": "127.0.0.1:14092,127.0.0.1:14094,127.0.0.1:14096"})
S = AlterConfigOpType.DELETE if sys.argv[1:] == ["off"] else AlterConfigOpType.SET
calls = [
    [
        ConfigResource(
            ResourceType.TOPIC,
            "driftline.features",
            incremental_configs=[
                ConfigEntry("follower.replication.throttled.replicas", "*", incremental_operation=S),
                ConfigEntry("leader.replication.throttled.replicas", "*", incremental_operation=S),
            ],
        )
    ]
]
calls += [
    [
        ConfigResource(
            ResourceType.BROKER,
            str(b),
            incremental_configs=[
                ConfigEntry("follower.replication.throttled.rate", "50000", incremental_operation=S),
                ConfigEntry("leader.replication.throttled.rate", "50000", incremental_operation=S),
            ],
        )
    ]
    for b in (1, 2, 3)
]
for rs in calls:
    for r, f in a.incremental_alter_configs(rs).items():
        try:
            print(r, f.result())
        except Exception as e:
            print(r, "ERR", e)
