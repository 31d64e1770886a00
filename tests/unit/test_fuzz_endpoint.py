"""Property tests for endpoint normalisation: one URL per endpoint, and only ``ValueError``."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from langchain_lamatic._settings import is_loopback_host, normalise_endpoint

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
domain_names = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=1, max_size=3),
    st.sampled_from(["dev", "com", "io", "lamatic.dev", "internal"]),
)
ipv4_hosts = st.ip_addresses(v=4).map(str)
ipv6_hosts = st.ip_addresses(v=6).map(lambda address: f"[{address}]")
loopback_hosts = st.sampled_from(
    ["localhost", "127.0.0.1", "127.1.2.3", "[::1]", "api.localhost", "LOCALHOST"]
)
hosts = domain_names | ipv4_hosts | ipv6_hosts | loopback_hosts
ports = st.none() | st.integers(min_value=1, max_value=65535)
path_segments = st.lists(
    st.from_regex(r"[A-Za-z0-9._~-]{1,12}", fullmatch=True).filter(lambda s: s not in (".", "..")),
    max_size=3,
)


@st.composite
def base_urls(draw: st.DrawFn, scheme: str | None = None) -> str:
    """An http(s) URL with no path, accepted by the client (http only for loopback hosts)."""
    host = draw(hosts)
    chosen = scheme or draw(st.sampled_from(["https", "http"]))
    if chosen == "http" and not is_loopback_host(host):
        chosen = "https"
    port = draw(ports)
    return f"{chosen}://{host}" + (f":{port}" if port is not None else "")


@st.composite
def endpoint_urls(draw: st.DrawFn) -> str:
    """An accepted URL with any path and trailing slashes, and stray whitespace around it."""
    base = draw(base_urls())
    segments = draw(path_segments)
    path = "".join(f"/{segment}" for segment in segments)
    slashes = "/" * draw(st.integers(min_value=0, max_value=3))
    padding = draw(st.sampled_from(["", " ", "\t", "\n "]))
    return f"{padding}{base}{path}{slashes}{padding}"


@settings(max_examples=200)
@given(url=endpoint_urls())
@example(url="https://x.lamatic.dev")
@example(url="https://x.lamatic.dev/graphql///")
@example(url="http://[::1]:8080/")
def test_normalising_is_idempotent(url: str) -> None:
    once = normalise_endpoint(url)

    assert normalise_endpoint(once) == once


@settings(max_examples=200)
@given(base=base_urls())
def test_base_url_forms_give_the_same_endpoint(base: str) -> None:
    expected = normalise_endpoint(base)
    forms = [base + "/", base + "/graphql", base + "/graphql/", f"  {base}/graphql  "]

    for form in forms:
        assert normalise_endpoint(form) == expected, form
    assert expected.endswith("/graphql")


@settings(max_examples=150)
@given(url=endpoint_urls())
def test_normalised_endpoint_keeps_scheme_host_and_port(url: str) -> None:
    import httpx

    given_url = httpx.URL(url.strip())
    result = httpx.URL(normalise_endpoint(url))

    assert result.scheme == given_url.scheme
    assert result.host == given_url.host
    assert result.port == given_url.port
    assert not result.path.endswith("/")
    assert not result.query
    assert not result.fragment


@settings(max_examples=200)
@given(text=st.text(max_size=80))
@example(text="")
@example(text="graphql")
@example(text="ftp://example.com/graphql")
@example(text="https://")
@example(text="https://user:pass@example.com/graphql")
@example(text="https://example.com/graphql?x=1")
@example(text="https://example.com/graphql#top")
@example(text="https://exa mple.com/")
@example(text="https://[::1/")
@example(text="https://xn--/")
@example(text="https://example.com:99999/")
@example(text="https://\x00.com/")
def test_arbitrary_text_raises_only_value_error(text: str) -> None:
    try:
        result = normalise_endpoint(text)
    except ValueError:
        return
    assert normalise_endpoint(result) == result


@settings(max_examples=150)
@given(
    scheme=st.sampled_from(["https", "http"]),
    host=hosts,
    rest=st.text(alphabet=st.characters(codec="ascii"), max_size=30),
)
def test_url_like_text_raises_only_value_error(scheme: str, host: str, rest: str) -> None:
    try:
        result = normalise_endpoint(f"{scheme}://{host}{rest}", allow_insecure_http=True)
    except ValueError:
        return
    assert normalise_endpoint(result, allow_insecure_http=True) == result


@settings(max_examples=150)
@given(host=domain_names | ipv4_hosts | ipv6_hosts, path=st.sampled_from(["", "/", "/graphql"]))
def test_plain_http_to_a_remote_host_is_rejected(host: str, path: str) -> None:
    address = host.strip("[]")
    try:
        if ipaddress.ip_address(address).is_loopback:
            return
    except ValueError:
        pass

    with pytest.raises(ValueError, match="http://"):
        normalise_endpoint(f"http://{host}{path}")
    assert normalise_endpoint(f"http://{host}{path}", allow_insecure_http=True).startswith(
        "http://"
    )
