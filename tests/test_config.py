import re
from pathlib import Path

import pytest

from transcode_worker.config import ConfigError, SettingsSchema, load_settings

CONF = Path(__file__).resolve().parent.parent / "conf" / "worker.toml"
REQUIRED_KEYS = {"worker_id", "listen", "advertise_url", "orchestrator_url", "api_token", "media_roots",
                 "segment_root", "max_concurrent_jobs", "heartbeat_interval_s", "ffmpeg_path", "ffprobe_path",
                 "spool_dir"}


def test_embedded_defaults_are_standalone_and_local(tmp_path):
    settings = load_settings(environ={"XDG_DATA_HOME": str(tmp_path)})
    assert settings.config_file is None
    assert settings.orchestrator_url == "" and settings.api_token == ""
    assert settings.listen == "0.0.0.0:8081" and settings.listen_port == 8081
    assert settings.media_roots and all(Path(p).is_absolute() for p in settings.media_roots)


def test_design_keys_exist():
    assert REQUIRED_KEYS <= set(SettingsSchema().fields)


def test_example_file_documents_every_key_and_loads():
    text = CONF.read_text()
    documented = set(re.findall(r"^#?\s*([a-z_]+) = ", text, re.MULTILINE))
    assert documented == set(SettingsSchema().fields)
    settings = load_settings(str(CONF), environ={})
    assert settings.config_file == str(CONF)


def test_toml_then_environment(tmp_path):
    conf = tmp_path / "w.toml"
    conf.write_text('worker_id = "from-file"\nmax_concurrent_jobs = 3\nmedia_roots = ["/a"]\n')
    settings = load_settings(str(conf), environ={
        "TRANSCODE_WORKER_MAX_CONCURRENT_JOBS": "5", "TRANSCODE_WORKER_MEDIA_ROOTS": "/x:/y"})
    assert settings.worker_id == "from-file"
    assert settings.max_concurrent_jobs == 5
    assert settings.media_roots == ["/x", "/y"]


def test_config_file_from_environment(tmp_path):
    conf = tmp_path / "w.toml"
    conf.write_text('listen = "127.0.0.1:9000"\n')
    settings = load_settings(environ={"TRANSCODE_WORKER_CONFIG": str(conf)})
    assert settings.listen_port == 9000 and settings.advertise_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize("toml,key", [
    ('max_concurrent_jobs = 0', "max_concurrent_jobs"),
    ('max_concurrent_jobs = "many"', "max_concurrent_jobs"),
    ('listen = "nohostport"', "listen"),
    ('listen = "0.0.0.0:99999"', "listen"),
    ('media_roots = ["relative/dir"]', "media_roots"),
    ('media_roots = []', "media_roots"),
    ('segment_root = "tmp"', "segment_root"),
    ('orchestrator_url = "not a url"', "orchestrator_url"),
    ('encoder_preset = "ludicrous"', "encoder_preset"),
    ('mystery_key = 1', "mystery_key"),
])
def test_bad_value_names_the_key_on_one_line(tmp_path, toml, key):
    conf = tmp_path / "w.toml"
    conf.write_text(toml + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(str(conf), environ={})
    message = str(err.value)
    assert message.startswith(key) and "\n" not in message


def test_unknown_environment_key_is_named():
    with pytest.raises(ConfigError, match="TRANSCODE_WORKER_MEDIA_ROOT"):
        load_settings(environ={"TRANSCODE_WORKER_MEDIA_ROOT": "/x"})


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="config file"):
        load_settings(str(tmp_path / "absent.toml"), environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("listen = \n")
    with pytest.raises(ConfigError, match="config file"):
        load_settings(str(broken), environ={})
