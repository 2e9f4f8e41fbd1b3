from pathlib import Path

from greenprof.config import ProfilerConfig
from greenprof.exporters.live import MetricsEndpoint, PushgatewayPush, observers_for


def test_the_settings_choose_the_live_exporters(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    assert observers_for(ProfilerConfig.create("run", db=db, env={})) == []
    both = observers_for(
        ProfilerConfig.create(
            "run", db=db, prometheus_port=9464, pushgateway="http://gateway:9091", env={}
        )
    )
    assert [type(o) for o in both] == [MetricsEndpoint, PushgatewayPush]
    endpoint, push = both
    assert isinstance(endpoint, MetricsEndpoint) and endpoint.port == 9464
    assert isinstance(push, PushgatewayPush) and push.url == "http://gateway:9091"
