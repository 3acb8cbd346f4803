"""HLS Content Steering (orchestrator/steering.py): the steered multivariant playlist and the
steering manifest, from the texts a worker writes."""
import pytest

from transcode_worker.orchestrator import steering

WORKER = "\n".join([
    "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS",
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="English, URI=\'x\'",LANGUAGE="en",DEFAULT=YES,'
    'AUTOSELECT=YES,CHANNELS="2",URI="j1.audio0.m3u8"',
    '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Deutsch",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,'
    'URI="j1.sub0.m3u8"',
    '#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,CODECS="avc1.64001f,mp4a.40.2",'
    'RESOLUTION=640x360,AUDIO="stereo",SUBTITLES="subs"',
    "j1.media.m3u8", ""])
A, B = "http://10.0.0.1:8081", "http://10.0.0.2:8081"


def test_the_steered_playlist_is_the_workers_with_absolute_uris_a_pathway_and_stable_ids():
    text = steering.steered_multivariant(WORKER, A + "/", "w1", "j1.steering.json?base=w1")
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", '#EXT-X-CONTENT-STEERING:SERVER-URI="j1.steering.json?base=w1",PATHWAY-ID="w1"']
    # a NAME that looks like a URI attribute stays a NAME
    assert lines[4] == ('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="English, URI=\'x\'",LANGUAGE="en",'
                        'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="http://10.0.0.1:8081/j1.audio0.m3u8",'
                        'STABLE-RENDITION-ID="j1.audio0.m3u8"')
    assert lines[6].endswith(',PATHWAY-ID="w1",STABLE-VARIANT-ID="j1.media.m3u8"')
    assert lines[7] == "http://10.0.0.1:8081/j1.media.m3u8"
    assert steering.stable_ids(text) == ({"j1.media.m3u8": A + "/j1.media.m3u8"},
                                         {"j1.audio0.m3u8": A + "/j1.audio0.m3u8", "j1.sub0.m3u8": A + "/j1.sub0.m3u8"})
    # the worker URL with or without its trailing slash: the same text
    again = steering.steered_multivariant(WORKER, A, "w1", "j1.steering.json?base=w1")
    assert again == text


@pytest.mark.parametrize("bad", ["#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"x\"junk\nj1.media.m3u8",
                                 "#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-ENDLIST",
                                 # a URI that would write attributes of its own into the stable id
                                 '#EXT-X-STREAM-INF:BANDWIDTH=1\nj1.m3u8",PATHWAY-ID="evil',
                                 '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="a b.m3u8"'])
def test_a_playlist_that_is_not_hls_is_refused(bad):
    with pytest.raises(ValueError):
        steering.steered_multivariant("#EXTM3U\n" + bad, A, "w1", "s")


POOL = "http://orch:8080/streams/j1"


def test_the_manifest_clones_the_pools_pathway_onto_each_worker_with_every_uri_whole():
    steered = steering.steered_multivariant(WORKER, POOL, steering.POOL, "j1.steering.json")
    manifest = steering.steering_manifest(steering.POOL, [("w1", A), ("w3", "http://10.0.0.3:9000/tw")],
                                          steered)
    assert manifest["VERSION"] == 1 and manifest["TTL"] == steering.STEERING_TTL_S
    assert manifest["PATHWAY-PRIORITY"] == ["w1", "w3", steering.POOL]  # the holder first, the pool last
    w1, w3 = manifest["PATHWAY-CLONES"]
    assert w1 == {"BASE-ID": steering.POOL, "ID": "w1", "URI-REPLACEMENT": {
        "PER-VARIANT-URIS": {"j1.media.m3u8": A + "/j1.media.m3u8"},
        "PER-RENDITION-URIS": {"j1.audio0.m3u8": A + "/j1.audio0.m3u8", "j1.sub0.m3u8": A + "/j1.sub0.m3u8"}}}
    assert w3["URI-REPLACEMENT"]["PER-VARIANT-URIS"] == {"j1.media.m3u8": "http://10.0.0.3:9000/tw/j1.media.m3u8"}


def test_with_no_worker_to_go_to_the_pool_stays_and_a_worker_named_like_it_is_no_clone():
    steered = steering.steered_multivariant(WORKER, POOL, steering.POOL, "s")
    assert steering.steering_manifest(steering.POOL, [], steered) == {
        "VERSION": 1, "TTL": steering.STEERING_TTL_S, "PATHWAY-PRIORITY": [steering.POOL], "PATHWAY-CLONES": []}
    named = steering.steering_manifest(steering.POOL, [(steering.POOL, B), ("w2", B)], steered)
    assert named["PATHWAY-PRIORITY"] == ["w2", steering.POOL] and len(named["PATHWAY-CLONES"]) == 1


def test_a_media_playlist_through_the_pool_names_its_segments_on_the_pools_route():
    text = "\n".join(["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD",
                      '#EXT-X-MAP:URI="j1_init0.mp4"', "#EXTINF:4.004,", "j1_0.m4s", "#EXT-X-ENDLIST", ""])
    assert steering.steered_media(text, POOL + "/").splitlines() == [
        "#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD", f'#EXT-X-MAP:URI="{POOL}/j1_init0.mp4"',
        "#EXTINF:4.004,", f"{POOL}/j1_0.m4s", "#EXT-X-ENDLIST"]


def test_the_clones_follow_the_url_the_playlist_was_made_under_whatever_the_orchestrator_is_asked_by_now():
    steered = steering.steered_multivariant(WORKER, "http://old-name:8080/streams/j1", steering.POOL, "s")
    [clone] = steering.steering_manifest(steering.POOL, [("w1", A)], steered)["PATHWAY-CLONES"]
    assert clone["URI-REPLACEMENT"]["PER-VARIANT-URIS"] == {"j1.media.m3u8": A + "/j1.media.m3u8"}
