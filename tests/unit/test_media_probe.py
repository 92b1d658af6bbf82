"""clipedit.domain.media: probing real MP4/MOV/PNG/JPEG files with ranged reads, the provider limits,
and the S3/HTTP range readers (moto in-process, a local http.server with and without Range)."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import pytest

from clipedit.adapters.range_readers import BytesRangeReader, HttpRangeReader, S3RangeReader
from clipedit.domain.errors import MediaRejected, RetryLater, SpecError
from clipedit.domain.media import (
    LIMITS_BY_MODEL,
    O3_LIMITS,
    ImageFacts,
    MediaLimits,
    VideoFacts,
    check_image,
    check_size_before_probe,
    check_video,
    limits_for,
    probe_image,
    probe_video,
)
from clipedit.domain.spec import Model
from tests.media_fixtures import (
    MediaFiles,
    png_bytes,
    rotated,
    top_level_types,
    with_major_brand,
    zero_tkhd_size,
)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFiles:
    return MediaFiles(tmp_path_factory.mktemp("media-probe"))


def probe_file(path: Path) -> VideoFacts:
    return probe_video(BytesRangeReader(path.read_bytes()))


def rejection(call: Any, *args: Any, **kwargs: Any) -> MediaRejected:
    with pytest.raises(MediaRejected) as info:
        call(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------------
# Valid clips


@pytest.mark.parametrize(
    ("name", "container"),
    [("valid_mp4", "mp4"), ("valid_mov", "mov"), ("faststart_mp4", "mp4"), ("big_mp4", "mp4")],
)
def test_valid_clip_facts(media: MediaFiles, name: str, container: str) -> None:
    path = getattr(media, name)
    facts = probe_file(path)

    assert facts.container == container
    assert (facts.width, facts.height) == (1280, 720)
    assert facts.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert facts.fps == pytest.approx(24.0, abs=0.5)
    assert facts.has_audio is True
    assert facts.video_codec == "avc1"
    assert facts.rotation_degrees == 0
    assert facts.size_bytes == path.stat().st_size
    for model in ("o3", "o1"):
        check_video(facts, limits_for(model))  # accepted


def test_probe_agrees_with_pyav(media: MediaFiles) -> None:
    """An independent reader (FFmpeg's demuxer) sees the same clip."""
    for path in (media.valid_mp4, media.valid_mov, media.fps_90, media.uhd_4k):
        facts = probe_file(path)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (facts.width, facts.height) == (stream.codec_context.width, stream.codec_context.height)
            assert facts.fps == pytest.approx(float(stream.average_rate), abs=0.01)
            assert facts.duration_seconds == pytest.approx(container.duration / av.time_base, abs=0.05)
            assert facts.has_audio == bool(container.streams.audio)


def test_moov_at_start_and_at_end_are_both_found(media: MediaFiles) -> None:
    assert top_level_types(media.valid_mp4.read_bytes())[-1] == b"moov"
    assert top_level_types(media.faststart_mp4.read_bytes())[:2] == [b"ftyp", b"moov"]
    assert probe_file(media.valid_mp4) == probe_file(media.faststart_mp4)


def test_moov_at_end_of_a_big_clip_is_probed_from_a_tiny_fraction(media: MediaFiles) -> None:
    data = media.big_mp4.read_bytes()
    assert 5_000_000 < len(data) < 10_000_000
    assert top_level_types(data)[-1] == b"moov"
    reader = BytesRangeReader(data)

    facts = probe_video(reader)

    assert facts.bytes_read == reader.bytes_read
    assert facts.bytes_read < 0.05 * len(data)
    assert facts.bytes_read < 16 * 1024  # headers + ftyp + moov body, nothing of the mdat
    assert reader.requests <= 8  # one read per top-level header, ftyp body, moov body


def test_rotated_portrait_clip_reports_display_size(media: MediaFiles) -> None:
    facts = probe_video(BytesRangeReader(rotated(media.valid_mp4.read_bytes(), 90)))
    assert (facts.width, facts.height, facts.rotation_degrees) == (720, 1280, 90)
    check_video(facts, O3_LIMITS)  # 720x1280 phone clips are fine

    upside_down = probe_video(BytesRangeReader(rotated(media.valid_mp4.read_bytes(), 180)))
    assert (upside_down.width, upside_down.height, upside_down.rotation_degrees) == (1280, 720, 180)


def test_largesize_and_to_eof_box_headers(media: MediaFiles) -> None:
    data = media.valid_mp4.read_bytes()
    assert top_level_types(data) == [b"ftyp", b"free", b"mdat", b"moov"]
    ftyp_end = int.from_bytes(data[:4], "big")
    mdat_size = int.from_bytes(data[ftyp_end + 8 : ftyp_end + 12], "big")
    # free(8) + mdat(8-byte header) -> one 16-byte largesize mdat header: no offset moves.
    large = data[:ftyp_end] + struct.pack(">I4sQ", 1, b"mdat", mdat_size + 8) + data[ftyp_end + 16 :]
    facts = probe_video(BytesRangeReader(large))
    assert facts == dataclasses.replace(probe_file(media.valid_mp4), bytes_read=facts.bytes_read)

    fast = media.faststart_mp4.read_bytes()
    assert top_level_types(fast)[-1] == b"mdat"
    mdat_at = fast.rfind(b"mdat") - 4
    to_eof = fast[:mdat_at] + bytes(4) + fast[mdat_at + 4 :]  # size 0: the box runs to the end
    assert probe_video(BytesRangeReader(to_eof)).duration_seconds == pytest.approx(3.0, abs=0.1)


def test_zero_tkhd_size_falls_back_to_the_sample_entry(media: MediaFiles) -> None:
    facts = probe_video(BytesRangeReader(zero_tkhd_size(media.valid_mp4.read_bytes())))
    assert (facts.width, facts.height) == (1280, 720)


# ---------------------------------------------------------------------------------------------
# Clips that break a limit


@pytest.mark.parametrize(
    ("name", "code", "quoted"),
    [
        ("short_2s", "CLIP_TOO_SHORT", ["2.00 s", "at least 3 s"]),
        ("long_11s", "CLIP_TOO_LONG", ["11.00 s", "at most 10.05 s"]),
        ("low_res_480p", "RESOLUTION_TOO_LOW", ["the clip is 854x480; each side must be at least 720 px (e.g. 1280x720)"]),
        ("uhd_4k", "RESOLUTION_TOO_HIGH", ["3840x2160", "at most 2160 px"]),
        ("fps_90", "FPS_TOO_HIGH", ["90 fps", "at most 60 fps"]),
        ("fps_15", "FPS_TOO_LOW", ["15 fps", "at least 24 fps"]),
    ],
)
def test_limit_violations(media: MediaFiles, name: str, code: str, quoted: list[str]) -> None:
    facts = probe_file(getattr(media, name))
    problem = rejection(check_video, facts, O3_LIMITS)
    assert problem.code == code
    for text in quoted:
        assert text in problem.message


def test_3gp_brand_is_an_unsupported_container(media: MediaFiles) -> None:
    facts = probe_video(BytesRangeReader(with_major_brand(media.valid_mp4.read_bytes(), b"3gp5")))
    assert facts.container == "3gp"
    problem = rejection(check_video, facts, O3_LIMITS)
    assert problem.code == "UNSUPPORTED_CONTAINER"
    assert "3GP" in problem.message and "MOV or MP4" in problem.message


def test_oversized_clip_and_the_size_precheck(media: MediaFiles) -> None:
    facts = dataclasses.replace(probe_file(media.valid_mp4), size_bytes=250_000_000)
    problem = rejection(check_video, facts, O3_LIMITS)
    assert problem.code == "CLIP_TOO_LARGE"
    assert "250.0 MB" in problem.message and "200.0 MB" in problem.message

    class NoReads:
        size = 5 * 1024**3

        def read(self, offset: int, length: int) -> bytes:
            raise AssertionError("a 5 GB object must be refused before any read")

    assert rejection(check_size_before_probe, NoReads.size, O3_LIMITS).code == "CLIP_TOO_LARGE"
    assert rejection(check_size_before_probe, 0, O3_LIMITS).code == "EMPTY_CLIP"
    check_size_before_probe(media.valid_mp4.stat().st_size, O3_LIMITS)


def test_every_problem_is_named_and_the_first_gives_the_code(media: MediaFiles) -> None:
    facts = dataclasses.replace(probe_file(media.low_res_480p), duration_seconds=2.0)
    problem = rejection(check_video, facts, O3_LIMITS)
    assert problem.code == "RESOLUTION_TOO_LOW"  # resolution is reported before duration
    assert "also: the clip is 2.00 s long" in problem.message


def test_fps_tolerance_and_duration_edges(media: MediaFiles) -> None:
    base = probe_file(media.valid_mp4)
    check_video(dataclasses.replace(base, fps=23.976), O3_LIMITS)  # NTSC film is "24 fps"
    check_video(dataclasses.replace(base, fps=59.94), O3_LIMITS)
    check_video(dataclasses.replace(base, duration_seconds=10.05), O3_LIMITS)  # fal's validator max
    assert rejection(check_video, dataclasses.replace(base, fps=23.0), O3_LIMITS).code == "FPS_TOO_LOW"
    too_short = rejection(check_video, dataclasses.replace(base, duration_seconds=2.996), O3_LIMITS)
    assert too_short.code == "CLIP_TOO_SHORT" and "2.996 s" in too_short.message


def test_limits_per_model() -> None:
    assert set(LIMITS_BY_MODEL) == {"o3", "o1"}
    assert limits_for("o3") is LIMITS_BY_MODEL["o3"]
    assert limits_for(Model.O1) is LIMITS_BY_MODEL["o1"]
    assert limits_for("O3") == MediaLimits()
    limits = limits_for("o3")
    assert (limits.min_seconds, limits.max_seconds) == (3.0, 10.05)
    assert (limits.min_side_px, limits.max_side_px, limits.min_fps, limits.max_fps) == (720, 2160, 24.0, 60.0)
    assert limits.containers == {"mp4", "mov"}
    with pytest.raises(SpecError):
        limits_for("v2")


# ---------------------------------------------------------------------------------------------
# Not a usable video


def test_unusable_files_are_rejected_with_their_code(media: MediaFiles) -> None:
    assert rejection(probe_file, media.audio_only).code == "NO_VIDEO_TRACK"

    truncated = rejection(probe_file, media.truncated)
    assert truncated.code == "CLIP_UNREADABLE"
    assert "truncated or corrupt" in truncated.message and "'mdat'" in truncated.message

    text = rejection(probe_file, media.text_mp4)
    assert text.code == "NOT_A_VIDEO" and "'This is '" in text.message

    assert rejection(probe_video, BytesRangeReader(b"")).code == "NOT_A_VIDEO"
    assert rejection(probe_video, BytesRangeReader(png_bytes(64, 64))).code == "NOT_A_VIDEO"


def test_corrupt_structures_are_unreadable(media: MediaFiles) -> None:
    data = media.valid_mp4.read_bytes()
    ftyp_end = int.from_bytes(data[:4], "big")

    garbage = data[:ftyp_end] + bytes(range(256)) * 4
    assert rejection(probe_video, BytesRangeReader(garbage)).code == "CLIP_UNREADABLE"

    moov_at = data.rfind(b"moov") - 4
    assert top_level_types(data)[-1] == b"moov"
    assert int.from_bytes(data[moov_at : moov_at + 4], "big") == len(data) - moov_at
    no_moov = data[:moov_at]  # a file that ends right after its mdat
    problem = rejection(probe_video, BytesRangeReader(no_moov))
    assert problem.code == "CLIP_UNREADABLE" and "moov" in problem.message

    bad_child = bytearray(data)
    bad_child[moov_at + 8 : moov_at + 16] = b"\xff\xff\xff\xf0\x00\x01\x02\x03"  # first child header
    assert rejection(probe_video, BytesRangeReader(bytes(bad_child))).code == "CLIP_UNREADABLE"

    big_moov = rejection(probe_video, BytesRangeReader(data), max_moov_bytes=1024)
    assert big_moov.code == "CLIP_UNREADABLE" and "moov" in big_moov.message


# ---------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize(
    ("name", "fmt", "size"),
    [("png_512", "png", (512, 512)), ("jpeg_512", "jpeg", (512, 512))],
)
def test_valid_images(media: MediaFiles, name: str, fmt: str, size: tuple[int, int]) -> None:
    path = getattr(media, name)
    facts = probe_image(BytesRangeReader(path.read_bytes()))
    assert (facts.format, (facts.width, facts.height), facts.size_bytes) == (fmt, size, path.stat().st_size)
    assert facts.bytes_read < 128  # the JPEG walk skips its 2 KB APP1 segment
    check_image(facts, limits_for("o3"))


@pytest.mark.parametrize(
    ("name", "code", "quoted"),
    [
        ("png_200", "IMAGE_TOO_SMALL", "200x200"),
        ("jpeg_200", "IMAGE_TOO_SMALL", "at least 300 px"),
        ("jpeg_2000x400", "IMAGE_ASPECT", "2000x400"),
        ("png_2000x400", "IMAGE_ASPECT", "between 0.40 and 2.50"),
    ],
)
def test_image_limit_violations(media: MediaFiles, name: str, code: str, quoted: str) -> None:
    facts = probe_image(BytesRangeReader(getattr(media, name).read_bytes()))
    problem = rejection(check_image, facts, O3_LIMITS)
    assert problem.code == code and quoted in problem.message


def test_image_rejections(media: MediaFiles) -> None:
    big = ImageFacts("jpeg", 1024, 1024, 12_000_000)
    assert rejection(check_image, big, O3_LIMITS).code == "IMAGE_TOO_LARGE"

    for data in (b"GIF89a" + bytes(100), media.valid_mp4.read_bytes()[:4096], b"", b"hello"):
        problem = rejection(probe_image, BytesRangeReader(data))
        assert problem.code == "IMAGE_FORMAT" and "must be a JPEG or PNG image" in problem.message
    assert "a GIF" in rejection(probe_image, BytesRangeReader(b"GIF89a" + bytes(100))).message

    jpeg = media.jpeg_512.read_bytes()
    assert rejection(probe_image, BytesRangeReader(jpeg[:1000])).code == "IMAGE_UNREADABLE"  # cut in APP1


# ---------------------------------------------------------------------------------------------
# The domain stays pure


def test_domain_media_imports_no_boto3_or_httpx() -> None:
    code = (
        "import sys, clipedit.domain.media, clipedit.adapters.range_readers\n"
        "bad = {'boto3', 'botocore', 'httpx'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    layer = Path(__file__).resolve().parents[2] / "layers" / "clipedit" / "python"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(layer)})


# ---------------------------------------------------------------------------------------------
# Range readers: read-ahead, S3 (moto), HTTP (local server)


def test_bytes_reader_and_short_reads_at_eof() -> None:
    reader = BytesRangeReader(b"0123456789")
    assert reader.read(8, 10) == b"89" and reader.read(20, 5) == b"" and reader.size == 10
    with pytest.raises(ValueError):
        reader.read(-1, 2)


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket="inbox")
    return moto_s3


def test_s3_reader_probes_a_moov_at_end_clip_with_few_small_gets(media: MediaFiles, s3: Any) -> None:
    data = media.big_mp4.read_bytes()
    s3.put_object(Bucket="inbox", Key="uploads/big clip.mp4", Body=data)
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.GetObject", lambda **kw: calls.append("GetObject"))
    s3.meta.events.register("before-call.s3.HeadObject", lambda **kw: calls.append("HeadObject"))

    reader = S3RangeReader(s3, "inbox", "uploads/big clip.mp4")
    check_size_before_probe(reader.size, O3_LIMITS)
    facts = probe_video(reader)

    assert facts == probe_video(BytesRangeReader(data))
    assert reader.bytes_read < 1024 * 1024
    assert calls.count("HeadObject") == 1
    assert calls.count("GetObject") <= 3  # first block (ftyp, mdat header), then the moov at the end
    assert reader.requests == len(calls)
    print(f"\nS3: {len(data)} B clip, probe asked {facts.bytes_read} B, fetched {reader.bytes_read} B in {calls}")


def test_s3_reader_with_known_size_and_version_and_missing_key(media: MediaFiles, s3: Any) -> None:
    s3.put_bucket_versioning(Bucket="inbox", VersioningConfiguration={"Status": "Enabled"})
    data = media.faststart_mp4.read_bytes()
    version = s3.put_object(Bucket="inbox", Key="a.mp4", Body=data)["VersionId"]
    s3.put_object(Bucket="inbox", Key="a.mp4", Body=b"overwritten later")

    reader = S3RangeReader(s3, "inbox", "a.mp4", version_id=version, size=len(data))
    assert probe_video(reader).duration_seconds == pytest.approx(3.0, abs=0.1)
    assert reader.requests == 1  # no HEAD; a moov-first clip fits in the first 64 KB block

    missing = rejection(probe_video, S3RangeReader(s3, "inbox", "nope.mp4"))
    assert missing.code == "CLIP_NOT_FOUND"


class _Server:
    """A tiny file server: optional Range support, counts requests."""

    def __init__(self, files: dict[str, bytes], *, honour_range: bool) -> None:
        self.files, self.honour_range = files, honour_range
        self.requests: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, *, body: bool) -> None:
                path = self.path.split("?")[0]
                server.requests.append((self.command, path, self.headers.get("Range")))
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                start, end, status = 0, len(data) - 1, 200
                wanted = self.headers.get("Range")
                if server.honour_range and wanted and wanted.startswith("bytes="):
                    first, _, last = wanted[6:].partition("-")
                    start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                try:
                    for at in range(start, end + 1, 64 * 1024):
                        self.wfile.write(data[at : min(at + 64 * 1024, end + 1)])
                except OSError:
                    pass  # the client stopped reading: that is the point

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[_Server]:
        thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def http_client() -> Iterator[Any]:
    import httpx

    with httpx.Client(timeout=5.0) as client:
        yield client


def test_http_reader_with_range_support(media: MediaFiles, http_client: Any) -> None:
    data = media.big_mp4.read_bytes()
    with _Server({"/big.mp4": data, "/empty.mp4": b""}, honour_range=True).running() as server:
        with HttpRangeReader(http_client, f"{server.url}/big.mp4?X-Amz-Signature=secret") as reader:
            facts = probe_video(reader)
        assert facts == probe_video(BytesRangeReader(data))
        assert reader.ranges_supported is True
        assert reader.bytes_read < 1024 * 1024
        methods = [method for method, _, _ in server.requests]
        assert "HEAD" not in methods  # the size came from Content-Range: presigned GET URLs work
        assert all(rng is not None for _, _, rng in server.requests)
        assert len(server.requests) <= 3
        print(f"\nHTTP/Range: {len(data)} B clip, fetched {reader.bytes_read} B in {len(server.requests)} GETs")

        empty = HttpRangeReader(http_client, f"{server.url}/empty.mp4")
        assert empty.size == 0
        assert rejection(check_size_before_probe, empty.size, O3_LIMITS).code == "EMPTY_CLIP"

        missing = rejection(probe_video, HttpRangeReader(http_client, f"{server.url}/gone.mp4?X-Amz-Signature=secret"))
        assert missing.code == "CLIP_NOT_FOUND"
        assert "secret" not in missing.message and "/gone.mp4" in missing.message


def test_http_reader_when_the_server_ignores_range(media: MediaFiles, http_client: Any) -> None:
    first = media.big_faststart_mp4.read_bytes()
    last = media.big_mp4.read_bytes()
    with _Server({"/first.mp4": first, "/last.mp4": last}, honour_range=False).running() as server:
        with HttpRangeReader(http_client, f"{server.url}/first.mp4") as reader:
            facts = probe_video(reader)
            assert reader.ranges_supported is False
        # A 200 with the whole body: we stop reading after what the probe needs.
        assert facts == probe_video(BytesRangeReader(first))
        assert reader.bytes_read < 256 * 1024 < len(first)
        assert reader.requests == 1

        # Moov at the end: one forward stream up to the moov, never a second download.
        with HttpRangeReader(http_client, f"{server.url}/last.mp4") as reader:
            assert probe_video(reader) == probe_video(BytesRangeReader(last))
        assert reader.requests == 1
        print(f"\nHTTP/no Range: moov-first read {facts.bytes_read} B; moov-last streamed {reader.bytes_read} B")


def test_http_reader_errors_are_classified() -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        status = int(request.url.path.strip("/"))
        return httpx.Response(status)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RetryLater):
            HttpRangeReader(client, "https://cdn.example/503").size
        with pytest.raises(RetryLater):
            HttpRangeReader(client, "https://cdn.example/429").size
        assert rejection(lambda: HttpRangeReader(client, "https://cdn.example/403").size).code == "CLIP_NOT_FOUND"
        assert rejection(lambda: HttpRangeReader(client, "https://cdn.example/400").size).code == "CLIP_FETCH_FAILED"


def test_read_ahead_serves_sub_reads_from_one_block(media: MediaFiles, http_client: Any) -> None:
    data = media.valid_mp4.read_bytes()
    with _Server({"/v.mp4": data}, honour_range=True).running() as server:
        reader = HttpRangeReader(http_client, f"{server.url}/v.mp4", size=len(data), min_fetch=4096)
        assert reader.read(0, 16) == data[:16]
        assert reader.read(16, 100) == data[16:116]
        assert reader.requests == 1
        assert reader.read(4000, 200) == data[4000:4200]  # straddles the block: fetch only the rest
        assert reader.requests == 2 and reader.bytes_read == 8192
        assert reader.read(len(data) - 10, 100) == data[-10:]  # short at EOF
