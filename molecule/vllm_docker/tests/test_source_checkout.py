"""Verify source-checkout mode: service vllm-src runs tag v0.9.2 of the local mirror with the image's parts."""

import json

SRC = "/opt/fleetserve/vllm-src/v0.9.2"
IMAGE_PKG = "/usr/local/lib/python3.11/dist-packages/vllm"  # where the stand-in image installs vllm
SO = ["_C.abi3.so", "_flashmla_C.abi3.so", "_moe_C.abi3.so", "cumem_allocator.abi3.so"]
KEY = "fs-engine-vllm-key-9c41e7"


def test_service_active(host):
    assert host.service("vllm-src").is_running


def test_checkout_is_the_pinned_tag_and_clean(host):
    assert host.check_output(f"git -C {SRC} describe --tags --exact-match") == "v0.9.2"
    assert host.check_output(f"cat {SRC}/vllm/version.py") == '__version__ = "0.9.2"'
    # The copied parts are ignored files, the record lives in .git: the checkout shows no change.
    assert host.check_output(f"git -C {SRC} status --porcelain") == ""


def test_compiled_parts_copied_from_the_image(host):
    assert sorted(host.check_output(f"cd {SRC}/vllm && ls *.so").split()) == SO
    assert sorted(host.check_output(f"ls -A {SRC}/vllm/vllm_flash_attn").split()) == [
        ".gitkeep",  # the checkout's own, kept
        "__init__.py",
        "_vllm_fa2_C.abi3.so",
        "_vllm_fa3_C.abi3.so",
        "flash_attn_interface.py",
    ]
    for part in SO + ["vllm_flash_attn/_vllm_fa2_C.abi3.so", "vllm_flash_attn/_vllm_fa3_C.abi3.so"]:
        content = host.file(f"{SRC}/vllm/{part}").content_string
        assert content == f"engine-sim stand-in for vllm/{part} of vLLM 0.9.2\n"


def test_record_names_the_image_the_parts_came_from(host):
    record = json.loads(host.file(f"{SRC}/.git/fleetserve-compiled-parts.json").content_string)
    image_id = host.check_output("docker image inspect --format '{{.Id}}' fleetserve/fs-engine-vllm-sim:test")
    assert record == {
        "image": "fleetserve/fs-engine-vllm-sim:test",
        "image_id": image_id,
        "vllm_version": "0.9.2",
        "package_dir": IMAGE_PKG,
        "so": SO,
        "vllm_flash_attn": True,
        "vllm_flash_attn_so": ["_vllm_fa2_C.abi3.so", "_vllm_fa3_C.abi3.so"],
    }


def test_no_copy_container_left_behind(host):
    assert host.check_output("docker ps --all --format '{{.Names}}' --filter name=parts") == ""


def test_container_mounts_the_checkout_read_only_first_on_the_path(host):
    raw = host.check_output("docker inspect vllm-src")
    assert KEY not in raw  # the key reaches the engine through the mounted key file, not the container's config
    info = json.loads(raw)[0]
    assert f"{SRC}:{SRC}:ro" in info["HostConfig"]["Binds"]
    assert info["Config"]["WorkingDir"] == SRC
    assert f"PYTHONPATH={SRC}" in info["Config"]["Env"]


def test_engine_imports_the_checkout(host):
    out = host.check_output("docker exec vllm-src python3 -c 'import vllm; print(vllm.__file__, vllm.__version__)'")
    assert out == f"{SRC}/vllm/__init__.py 0.9.2"


def test_engine_ran_the_checkouts_api_server(host):
    """Only the checkout's api_server logs this line, and only once it found the compiled parts beside it."""
    log = host.check_output("journalctl -u vllm-src --no-pager -o cat")
    assert f"vllm 0.9.2 (source checkout) from {SRC}/vllm" in log


def test_unit_names_the_checkout(host):
    assert "Description=vLLM 0.9.2 from source checkout v0.9.2 serving MiniMax-M1-40k" in host.check_output(
        "systemctl cat vllm-src"
    )


def test_container_runs_its_own_plans_port(host):
    """vllm-src's plan (converge.yml) was made with the port wish 8001."""
    args = json.loads(host.check_output("docker inspect vllm-src"))[0]["Args"]
    assert args[-4:] == ["--host", "0.0.0.0", "--port", "8001"]


def test_serves_the_model(host):
    out = host.check_output(f"curl -sS -H 'Authorization: Bearer {KEY}' http://127.0.0.1:8001/v1/models")
    assert json.loads(out)["data"][0]["id"] == "MiniMax-M1"
