import io
import struct

import pytest

from specs import hls_output
from transcode_worker import segments


def box(kind, payload=b""):
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_made_knows_the_unbroken_run_from_a_segment():
    made = segments.Made()
    for n in (3, 4, 5, 7):
        made.add(n)
    assert made.run_end(3) == 5 and made.run_end(7) == 7 and made.run_end(6) == 5 and len(made) == 4


def test_an_fmp4_segment_splits_into_its_header_and_its_fragment():
    header = box(b"ftyp", b"iso6") + box(b"moov", box(b"mvhd", b"\0" * 8))
    fragment = box(b"moof", box(b"mfhd", b"\0" * 8)) + box(b"mdat", b"media")
    assert segments.moof_offset(io.BytesIO(header + fragment)) == len(header)
    with pytest.raises(ValueError):
        segments.moof_offset(io.BytesIO(header))


def run_folder(tmp_path, fmp4=False):
    output = hls_output("j", 2.0, start_number=4, fmp4=fmp4)
    made = segments.Made()
    noted = []
    collector = segments.Collector(tmp_path, output, made, on_made=noted.append)
    collector.prepare()
    return output, made, noted, collector


def test_only_what_the_list_names_is_moved_into_place(tmp_path):
    output, made, noted, collector = run_folder(tmp_path)
    staging = tmp_path / output.staging
    (staging / "j_4.ts").write_bytes(b"G" * 188)
    (staging / "j_5.ts").write_bytes(b"G" * 94)  # still being written: not listed yet
    (staging / "segments.csv").write_bytes(b"j_4.ts,0.000000,2.000000\nj_5.ts,2.0")  # a line half written
    assert collector.collect() == [4]
    assert (tmp_path / "j_4.ts").read_bytes() == b"G" * 188 and not (tmp_path / "j_5.ts").exists()
    with open(staging / "segments.csv", "ab") as fh:
        fh.write(b"00000,4.000000\n")
    assert collector.collect() == [5] and noted == [4, 5] and 5 in made
    collector.finish()
    assert not staging.exists()


def test_fmp4_segments_lose_their_header_which_becomes_the_init_segment(tmp_path):
    output, made, _, collector = run_folder(tmp_path, fmp4=True)
    header = box(b"ftyp", b"iso6") + box(b"moov")
    (tmp_path / output.staging / "j_4.mp4").write_bytes(header + box(b"moof") + box(b"mdat", b"4"))
    (tmp_path / output.staging / "segments.csv").write_bytes(b"j_4.mp4,0,2\n")
    assert collector.collect() == [4]
    assert (tmp_path / "j_init_0.mp4").read_bytes() == header
    assert (tmp_path / "j_4.m4s").read_bytes() == box(b"moof") + box(b"mdat", b"4")


def test_a_listed_segment_that_is_gone_is_not_recorded(tmp_path):
    output, made, _, collector = run_folder(tmp_path)
    (tmp_path / output.staging / "segments.csv").write_bytes(b"j_4.ts,0,2\nnot-ours.ts,0,2\n")
    assert collector.collect() == [] and 4 not in made


@pytest.mark.parametrize("sizes, watched, limit, removed", [
    ({n: 10 for n in range(10)}, 5, 100, []),  # within the limit
    ({n: 10 for n in range(10)}, 5, 80, [0, 1, 9]),  # furthest first, behind before ahead: down to 72
    ({n: 10 for n in range(10)}, 0, 50, [9, 8, 7, 6, 5, 4]),  # never the viewer's segment nor the next
    ({n: 10 for n in range(3)}, 1, 5, [0]),  # what is left is what is being watched
    ({n: 10 for n in range(10)}, 5, 0, []),  # 0: no limit
])
def test_a_job_past_its_disk_limit_loses_the_segments_furthest_from_its_viewer(sizes, watched, limit, removed):
    assert segments.to_remove(sizes, watched, limit) == removed


def test_the_disk_limit_counts_the_audio_renditions_beside_the_video():
    """Keys name the video's segments (None) or a rendition's: all count, the furthest from the
    viewer go first whoever made them."""
    sizes = {**{(None, n): 10 for n in range(6)}, **{("audio1", n): 5 for n in range(6)}}
    removed = segments.to_remove(sizes, 2, 80, number_of=lambda key: key[1])
    assert removed == [(None, 5), ("audio1", 5), (None, 0)]  # 90 bytes down to 65
