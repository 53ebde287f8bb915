use super::*;
use std::io::Write;
use tracker_config::line_column;

/// Writes `text` to a temp file and loads it; the file lives as long as
/// the returned handle so messages can be compared with its path.
fn load_text(text: &str) -> (tempfile::NamedTempFile, Result<Config, ConfigError>) {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write temp file");
    let result = Config::load(file.path());
    (file, result)
}

/// Loads `text`, expects an error and checks file, line and key in the message.
fn expect_error(text: &str, line: usize, key: Option<&str>) -> ConfigError {
    let (file, result) = load_text(text);
    let err = result.expect_err("config should be refused");
    let msg = err.to_string();
    let path = file.path().display().to_string();
    assert!(msg.starts_with(&format!("{path}:{line}")), "{msg}");
    assert_eq!(err.line(), Some(line), "{msg}");
    match key {
        Some(key) => {
            assert!(msg.contains(&format!("key `{key}`: ")), "{msg}");
            assert_eq!(err.key(), Some(key));
        }
        None => assert!(msg.contains("(no key)"), "{msg}"),
    }
    err
}

#[test]
fn loads_an_empty_file_as_defaults() {
    let (_file, result) = load_text("");
    assert_eq!(result.expect("empty config loads"), Config::default());
}

#[test]
fn loads_a_partial_file_keeping_other_defaults() {
    let (_file, result) =
        load_text("log_level = \"debug\"\n[udp]\nlisten = [\"127.0.0.1:7000\"]\nworkers = 3\n");
    let config = result.expect("valid config loads");
    assert_eq!(config.log_level, LogLevel::Debug);
    assert_eq!(config.udp.listen, vec!["127.0.0.1:7000".parse().unwrap()]);
    assert_eq!(config.udp.workers, 3);
    assert_eq!(config.swarm, SwarmConfig::default());
}

#[test]
fn unreadable_file_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.toml");
    let err = Config::load(&path).expect_err("missing file");
    let msg = err.to_string();
    assert_eq!(err.kind(), ConfigErrorKind::Io);
    assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
    assert!(msg.contains("cannot read"), "{msg}");
}

#[test]
fn unknown_top_level_key() {
    let err = expect_error("log_level = \"info\"\n\nbogus = 1\n", 3, Some("bogus"));
    assert!(err.to_string().contains(":3:1: "), "{err}");
    assert!(err.message().contains("unknown field `bogus`"), "{err}");
}

#[test]
fn unknown_section() {
    let err = expect_error("[swarm]\nworkers = 2\n[nosuch]\na = 1\n", 3, Some("nosuch"));
    assert!(err.message().contains("unknown field `nosuch`"), "{err}");
}

#[test]
fn unknown_key_in_section() {
    let text = "# comment\n[swarm]\nworkers = 2\n\n[udp]\nworkers = 2\nworkerz = 3\n";
    let err = expect_error(text, 7, Some("udp.workerz"));
    assert!(
        err.to_string()
            .contains(":7:1: key `udp.workerz`: unknown field `workerz`, expected one of"),
        "{err}"
    );
}

#[test]
fn wrong_type() {
    let err = expect_error("\n\n[swarm]\nworkers = \"x\"\n", 4, Some("swarm.workers"));
    assert!(err.to_string().contains(":4:11: "), "{err}");
    assert!(
        err.message()
            .contains("invalid type: string \"x\", expected usize"),
        "{err}"
    );
}

#[test]
fn negative_number() {
    let err = expect_error("[udp]\nworkers = -3\n", 2, Some("udp.workers"));
    assert!(err.message().contains("-3"), "{err}");
}

#[test]
fn section_of_wrong_type() {
    expect_error("\nudp = 3\n", 2, Some("udp"));
}

#[test]
fn bad_enum_value() {
    let err = expect_error("# x\nlog_level = \"loud\"\n", 2, Some("log_level"));
    assert!(err.message().contains("`loud` is not a level"), "{err}");
    let err = expect_error("log_format = \"xml\"\n", 1, Some("log_format"));
    assert!(err.message().contains("`json`"), "{err}");
    let err = expect_error(
        "[access_list]\nmode = \"grey\"\n",
        2,
        Some("access_list.mode"),
    );
    assert!(err.message().contains("`white`"), "{err}");
}

#[test]
fn bad_socket_address() {
    let text = "[udp]\nlisten = [\n  \"0.0.0.0:6969\",\n  \"nope:1\",\n]\n";
    let err = expect_error(text, 4, Some("udp.listen[1]"));
    assert!(err.to_string().contains(":4:3: "), "{err}");
    assert!(err.message().contains("socket address"), "{err}");
}

#[test]
fn syntax_errors_have_a_line_but_no_key() {
    let err = expect_error("[udp]\nworkers = = 3\n", 2, None);
    assert_eq!(err.kind(), ConfigErrorKind::Syntax);
    assert!(
        err.to_string().contains("TOML syntax error (no key)"),
        "{err}"
    );
    assert!(!err.message().contains('\n'));
    expect_error("log_level = \"info\"\n[udp\n", 2, None);
    expect_error("[udp]\nworkers = 2\n[udp]\n", 3, None);
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(line_column("ä = 1\nb", 0), (1, 1));
    assert_eq!(line_column("ä = 1\nb", 3), (1, 3));
    assert_eq!(line_column("ä = 1\nb", 7), (2, 1));
    assert_eq!(line_column("a\n", 99), (2, 1));
}

#[test]
fn defaults_are_valid() {
    assert_eq!(Config::default().validate(), Ok(()));
}

#[test]
fn validate_names_the_key() {
    type Mutation = fn(&mut Config);
    let cases: Vec<(Mutation, &str)> = vec![
        (|c| c.swarm.workers = 0, "swarm.workers"),
        (|c| c.swarm.workers = 1025, "swarm.workers"),
        (|c| c.swarm.channel_capacity = 0, "swarm.channel_capacity"),
        (|c| c.swarm.cleaning_interval = 0, "swarm.cleaning_interval"),
        (|c| c.swarm.max_peer_age = 0, "swarm.max_peer_age"),
        (|c| c.swarm.max_torrents = 0, "swarm.max_torrents"),
        (|c| c.swarm.max_peers = 0, "swarm.max_peers"),
        (
            |c| c.swarm.max_peers_per_torrent = 0,
            "swarm.max_peers_per_torrent",
        ),
        (|c| c.swarm.max_peers_per_ip = 0, "swarm.max_peers_per_ip"),
        (|c| c.swarm.max_ws_torrents = 0, "swarm.max_ws_torrents"),
        (|c| c.swarm.max_ws_peers = 0, "swarm.max_ws_peers"),
        (|c| c.protocol.max_numwant = 0, "protocol.max_numwant"),
        (
            |c| {
                c.protocol.max_numwant = 10;
                c.protocol.default_numwant = 11;
            },
            "protocol.default_numwant",
        ),
        (|c| c.udp.workers = 0, "udp.workers"),
        (|c| c.udp.max_scrape_torrents = 0, "udp.max_scrape_torrents"),
        (
            |c| c.udp.max_scrape_torrents = 75,
            "udp.max_scrape_torrents",
        ),
        (
            |c| c.udp.connection_id_lifetime = 0,
            "udp.connection_id_lifetime",
        ),
        (|c| c.udp.outgoing_queue_len = 0, "udp.outgoing_queue_len"),
        (|c| c.udp.max_pending_scrapes = 0, "udp.max_pending_scrapes"),
        (
            |c| c.access_list.mode = AccessListMode::White,
            "access_list.path",
        ),
        (
            |c| c.access_list.mode = AccessListMode::Black,
            "access_list.path",
        ),
        (|c| c.http.workers = 0, "http.workers"),
        (|c| c.http.max_connections = 0, "http.max_connections"),
        (|c| c.http.max_request_size = 255, "http.max_request_size"),
        (|c| c.http.request_timeout = 0, "http.request_timeout"),
        (|c| c.http.keep_alive_timeout = 0, "http.keep_alive_timeout"),
        (|c| c.http.first_byte_timeout = 0, "http.first_byte_timeout"),
        (
            |c| c.http.max_connections_per_ip = 0,
            "http.max_connections_per_ip",
        ),
        (
            |c| c.http.max_scrape_torrents = 0,
            "http.max_scrape_torrents",
        ),
        (
            |c| c.http.min_announce_interval = 901,
            "http.min_announce_interval",
        ),
        (
            |c| c.http.real_ip_header = "X Forwarded".into(),
            "http.real_ip_header",
        ),
        (|c| c.ws.max_message_size = 100, "ws.max_message_size"),
        (|c| c.ws.max_outgoing_bytes = 1024, "ws.max_outgoing_bytes"),
        (|c| c.ws.max_pending_offers = 0, "ws.max_pending_offers"),
        (|c| c.ws.idle_timeout = 0, "ws.idle_timeout"),
        (
            |c| c.http.tls_listen = vec!["127.0.0.1:443".parse().unwrap()],
            "tls.certificate_path",
        ),
        (
            |c| {
                c.ws.tls_listen = vec!["127.0.0.1:443".parse().unwrap()];
                c.tls.certificate_path = "cert.pem".into();
            },
            "tls.private_key_path",
        ),
    ];
    for (mutate, key) in cases {
        let mut config = Config::default();
        mutate(&mut config);
        let msg = config.validate().expect_err(key).to_string();
        assert!(msg.starts_with(&format!("key `{key}`: ")), "{msg}");
    }
}

/// Each kind of broken limit as a value and as the words an operator reads
/// (unchanged from when `validate` returned a `String`).
#[test]
fn validation_errors_are_typed_and_worded() {
    type Mutation = fn(&mut Config);
    let cases: Vec<(Mutation, ValidationError, &str)> = vec![
        (
            |c| c.swarm.workers = 0,
            ValidationError::OutOfRange {
                key: "swarm.workers",
                got: 0,
                min: 1,
                max: 1024,
                unit: "",
                why: "",
            },
            "key `swarm.workers`: must be between 1 and 1024, got 0",
        ),
        (
            |c| c.swarm.channel_capacity = 0,
            ValidationError::Zero {
                key: "swarm.channel_capacity",
                needed_by: None,
            },
            "key `swarm.channel_capacity`: must be at least 1, got 0",
        ),
        (
            |c| c.udp.workers = 0,
            ValidationError::Zero {
                key: "udp.workers",
                needed_by: Some("udp.listen"),
            },
            "key `udp.workers`: must be at least 1, got 0",
        ),
        (
            |c| {
                c.protocol.max_numwant = 10;
                c.protocol.default_numwant = 11;
            },
            ValidationError::Exceeds {
                key: "protocol.default_numwant",
                got: 11,
                bound_key: "protocol.max_numwant",
                bound: 10,
            },
            "key `protocol.default_numwant`: 11 exceeds protocol.max_numwant (10)",
        ),
        (
            |c| c.udp.max_scrape_torrents = 75,
            ValidationError::OutOfRange {
                key: "udp.max_scrape_torrents",
                got: 75,
                min: 1,
                max: 74,
                unit: "",
                why: " (about 74 fit one datagram)",
            },
            "key `udp.max_scrape_torrents`: must be between 1 and 74 (about 74 fit one \
             datagram), got 75",
        ),
        (
            |c| c.http.workers = 1025,
            ValidationError::TooLarge {
                key: "http.workers",
                got: 1025,
                max: 1024,
            },
            "key `http.workers`: must be at most 1024, got 1025",
        ),
        (
            |c| c.http.max_request_size = 255,
            ValidationError::OutOfRange {
                key: "http.max_request_size",
                got: 255,
                min: 256,
                max: 1 << 20,
                unit: " bytes",
                why: "",
            },
            "key `http.max_request_size`: must be between 256 and 1048576 bytes, got 255",
        ),
        (
            |c| c.http.min_announce_interval = 901,
            ValidationError::Exceeds {
                key: "http.min_announce_interval",
                got: 901,
                bound_key: "protocol.announce_interval",
                bound: 900,
            },
            "key `http.min_announce_interval`: 901 exceeds protocol.announce_interval (900)",
        ),
        (
            |c| c.http.real_ip_header = " X Forwarded ".into(),
            ValidationError::NotAHeaderName {
                key: "http.real_ip_header",
                header: "X Forwarded".into(),
            },
            "key `http.real_ip_header`: `X Forwarded` is not an HTTP header name",
        ),
        (
            |c| {
                c.ws.max_message_size = 2048;
                c.ws.max_outgoing_bytes = 1024;
            },
            ValidationError::LessThan {
                key: "ws.max_outgoing_bytes",
                got: 1024,
                bound_key: "ws.max_message_size",
                bound: 2048,
                why: "one relayed message would not fit",
            },
            "key `ws.max_outgoing_bytes`: 1024 is less than ws.max_message_size (2048): one \
             relayed message would not fit",
        ),
        (
            |c| c.ws.tls_listen = vec!["127.0.0.1:443".parse().unwrap()],
            ValidationError::MissingTlsFile {
                key: "tls.certificate_path",
            },
            "key `tls.certificate_path`: must name a PEM file when http.tls_listen or \
             ws.tls_listen is set",
        ),
        (
            |c| c.access_list.mode = AccessListMode::White,
            ValidationError::MissingAccessList {
                mode: AccessListMode::White,
            },
            "key `access_list.path`: must name a file when access_list.mode is white",
        ),
        (
            |c| c.xdp.hot_pool_peers = 65,
            ValidationError::OutOfRange {
                key: "xdp.hot_pool_peers",
                got: 65,
                min: 1,
                max: 64,
                unit: "",
                why: " (what a cache entry holds)",
            },
            "key `xdp.hot_pool_peers`: must be between 1 and 64 (what a cache entry holds), got 65",
        ),
        (
            |c| c.xdp.hot_min_rate = 0,
            ValidationError::OutOfRange {
                key: "xdp.hot_min_rate",
                got: 0,
                min: 1,
                max: 1_000_000,
                unit: " announces per second",
                why: "",
            },
            "key `xdp.hot_min_rate`: must be between 1 and 1000000 announces per second, got 0",
        ),
        (
            |c| c.xdp.kernel_refresh_ms = 0,
            ValidationError::OutOfRange {
                key: "xdp.kernel_refresh_ms",
                got: 0,
                min: 10,
                max: 60_000,
                unit: " ms",
                why: " (the most the kernel's answers lag the swarm)",
            },
            "key `xdp.kernel_refresh_ms`: must be between 10 and 60000 ms (the most the \
             kernel's answers lag the swarm), got 0",
        ),
        (
            |c| c.xdp.ring_bytes = 5000,
            ValidationError::NotPowerOfTwo {
                key: "xdp.ring_bytes",
                got: 5000,
                min: 4096,
                max: 1 << 30,
            },
            "key `xdp.ring_bytes`: must be a power of two from 4096 to 1073741824, got 5000",
        ),
        (
            |c| c.xdp.frame_count = 96,
            ValidationError::NotPowerOfTwo {
                key: "xdp.frame_count",
                got: 96,
                min: 64,
                max: 1 << 20,
            },
            "key `xdp.frame_count`: must be a power of two from 64 to 1048576, got 96",
        ),
        (
            |c| c.xdp.scrape_map_entries = 0,
            ValidationError::OutOfRange {
                key: "xdp.scrape_map_entries",
                got: 0,
                min: 1,
                max: 1 << 24,
                unit: " torrents",
                why: " (the kernel allocates the whole map at start, about 104 bytes a torrent)",
            },
            "key `xdp.scrape_map_entries`: must be between 1 and 16777216 torrents (the kernel \
             allocates the whole map at start, about 104 bytes a torrent), got 0",
        ),
        (
            |c| c.xdp.kernel_refresh_ms = 5,
            ValidationError::OutOfRange {
                key: "xdp.kernel_refresh_ms",
                got: 5,
                min: 10,
                max: 60_000,
                unit: " ms",
                why: " (the most the kernel's answers lag the swarm)",
            },
            "key `xdp.kernel_refresh_ms`: must be between 10 and 60000 ms (the most the \
             kernel's answers lag the swarm), got 5",
        ),
        (
            |c| {
                c.xdp.iface = "eth0".into();
                c.xdp.pin_path = "".into();
            },
            ValidationError::MissingPinPath,
            "key `xdp.pin_path`: must name a bpffs directory when xdp.iface is set",
        ),
        (
            |c| {
                c.swarm.inline = SwarmInline::On;
                c.swarm.workers = 2;
            },
            ValidationError::InlineNeeds {
                key: "swarm.workers",
                needs: "must be 1",
            },
            "key `swarm.workers`: must be 1 when swarm.inline is \"on\" (the request worker \
             runs in the one UDP socket worker's thread); use \"auto\" or \"off\" otherwise",
        ),
        (
            |c| {
                c.swarm.inline = SwarmInline::On;
                c.swarm.workers = 1;
                c.udp.workers = 2;
            },
            ValidationError::InlineNeeds {
                key: "udp.workers",
                needs: "must be 1",
            },
            "key `udp.workers`: must be 1 when swarm.inline is \"on\" (the request worker \
             runs in the one UDP socket worker's thread); use \"auto\" or \"off\" otherwise",
        ),
        (
            |c| {
                c.swarm.inline = SwarmInline::On;
                c.swarm.workers = 1;
                c.udp.listen.clear();
            },
            ValidationError::InlineNeeds {
                key: "udp.listen",
                needs: "must name an address",
            },
            "key `udp.listen`: must name an address when swarm.inline is \"on\" (the request \
             worker runs in the one UDP socket worker's thread); use \"auto\" or \"off\" \
             otherwise",
        ),
        (
            |c| {
                c.swarm.inline = SwarmInline::On;
                c.swarm.workers = 1;
                c.udp.workers = 1;
                c.xdp.iface = "eth0".into();
            },
            ValidationError::InlineNeeds {
                key: "xdp.iface",
                needs: "must be empty",
            },
            "key `xdp.iface`: must be empty when swarm.inline is \"on\" (the request worker \
             runs in the one UDP socket worker's thread); use \"auto\" or \"off\" otherwise",
        ),
    ];
    for (mutate, expected, text) in cases {
        let mut config = Config::default();
        mutate(&mut config);
        let err = config.validate().expect_err(text);
        assert_eq!(err, expected);
        assert_eq!(err.to_string(), text);
        // What `-c FILE` and the command line report carries the same value.
        let reported = config.validate_as("command line").expect_err(text);
        assert_eq!(reported.kind(), ConfigErrorKind::Limit);
        assert_eq!(reported.validation(), Some(&expected));
        assert_eq!(reported.to_string(), format!("command line: {text}"));
    }
}

#[test]
fn validate_accepts_the_edges() {
    let mut config = Config::default();
    config.swarm.workers = 1024;
    config.udp.max_scrape_torrents = 74;
    config.protocol.default_numwant = 7;
    config.protocol.max_numwant = 7;
    assert_eq!(config.validate(), Ok(()));
    config.swarm.workers = 1;
    config.udp.max_scrape_torrents = 1;
    assert_eq!(config.validate(), Ok(()));
    // No addresses means no socket workers are needed.
    config.udp.listen.clear();
    config.udp.workers = 0;
    assert_eq!(config.validate(), Ok(()));
    config.access_list.mode = AccessListMode::White;
    config.access_list.path = "/etc/acl.txt".into();
    assert_eq!(config.validate(), Ok(()));
    // Inline on its one topology; "auto" and "off" fit any.
    let mut config = Config::default();
    config.swarm.workers = 1;
    config.udp.workers = 1;
    config.swarm.inline = SwarmInline::On;
    assert_eq!(config.validate(), Ok(()));
    config.swarm.workers = 4;
    config.udp.workers = 3;
    for inline in [SwarmInline::Auto, SwarmInline::Off] {
        config.swarm.inline = inline;
        assert_eq!(config.validate(), Ok(()));
    }
}

#[test]
fn load_reports_limit_failures_with_file_line_and_key() {
    let (file, result) = load_text("[swarm]\nworkers = 2\n\n[udp]\nmax_scrape_torrents = 80\n");
    let err = result.expect_err("80 is over the limit");
    assert_eq!(err.kind(), ConfigErrorKind::Limit);
    let msg = err.to_string();
    let prefix = format!(
        "{}:5: key `udp.max_scrape_torrents`: ",
        file.path().display()
    );
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(msg.contains("80"), "{msg}");
}

#[test]
fn load_limit_failure_on_a_default_points_at_the_related_key() {
    // default_numwant keeps its default (50) and is not in the file; the
    // line to fix is max_numwant's.
    let (file, result) = load_text("[protocol]\nannounce_interval = 60\nmax_numwant = 10\n");
    let msg = result.expect_err("default over max").to_string();
    let prefix = format!(
        "{}:3: key `protocol.default_numwant`: ",
        file.path().display()
    );
    assert!(msg.starts_with(&prefix), "{msg}");
}

#[test]
fn load_limit_failure_without_a_line() {
    let (_file, result) = load_text("[access_list]\n");
    assert!(result.is_ok());
    let (file, result) = load_text("access_list.mode = \"white\"\n");
    let msg = result.expect_err("white needs a path").to_string();
    let prefix = format!("{}:1: key `access_list.path`: ", file.path().display());
    assert!(msg.starts_with(&prefix), "{msg}");
    let (file, result) = load_text("[swarm]\nworkers = 0\n");
    let err = result.expect_err("0 workers");
    assert!(err
        .to_string()
        .starts_with(&format!("{}:2: ", file.path().display())));
}

#[test]
fn find_key_line_understands_sections_and_dotted_keys() {
    let text = "log_level = \"info\"\n[swarm]\nworkers=3\n[udp]\n  workers = 4\nudp.x = 1\n";
    assert_eq!(find_key_line(text, "log_level"), Some(1));
    assert_eq!(find_key_line(text, "swarm.workers"), Some(3));
    assert_eq!(find_key_line(text, "udp.workers"), Some(5));
    assert_eq!(find_key_line(text, "protocol.max_numwant"), None);
    assert_eq!(
        find_key_line("swarm.workers = 0\n", "swarm.workers"),
        Some(1)
    );
    // `workers_x` must not be taken for `workers`.
    assert_eq!(find_key_line("[udp]\nworkers_x = 1\n", "udp.workers"), None);
}

fn round_trip(config: &Config) {
    let text = config.to_commented_toml();
    let (_file, result) = load_text(&text);
    let loaded = result.unwrap_or_else(|e| panic!("printed config does not load: {e}\n{text}"));
    assert_eq!(&loaded, config, "{text}");
}

#[test]
fn persistence_interval_must_not_be_0_once_a_path_is_set() {
    let mut config = Config::default();
    config.persistence.interval = 0;
    assert_eq!(
        config.validate(),
        Ok(()),
        "harmless while persistence is off"
    );
    config.persistence.path = "/var/lib/tracker/swarm.snapshot".into();
    let err = config.validate().unwrap_err();
    assert_eq!(err.key(), "persistence.interval", "{err}");
    assert_eq!(err.related_key(), Some("persistence.path"), "{err}");
}

#[test]
fn commented_default_round_trips() {
    round_trip(&Config::default());
}

#[test]
fn commented_non_default_round_trips() {
    let config = Config {
        log_level: "warn,tracker_swarm=debug".parse().unwrap(),
        log_format: LogFormat::Json,
        swarm: SwarmConfig {
            workers: 7,
            channel_capacity: 3,
            cleaning_interval: 5,
            max_peer_age: 99,
            max_torrents: 11,
            max_peers: 12,
            max_peers_per_torrent: 13,
            max_peers_per_ip: 14,
            max_ws_torrents: 15,
            max_ws_peers: 16,
            inline: SwarmInline::Off,
        },
        protocol: ProtocolConfig {
            announce_interval: 1800,
            default_numwant: 20,
            max_numwant: 200,
        },
        udp: UdpConfig {
            listen: vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()],
            workers: 9,
            max_scrape_torrents: 74,
            connection_id_lifetime: 60,
            recv_buffer_size: 1 << 24,
            outgoing_queue_len: 10,
            max_pending_scrapes: 11,
        },
        http: HttpConfig {
            listen: vec!["127.0.0.1:3".parse().unwrap()],
            tls_listen: vec!["[::1]:443".parse().unwrap()],
            workers: 3,
            max_connections: 5,
            max_request_size: 300,
            request_timeout: 2,
            keep_alive_timeout: 4,
            first_byte_timeout: 3,
            max_connections_per_ip: 30,
            min_announce_interval: 0,
            max_scrape_torrents: 6,
            full_scrape: true,
            max_full_scrape_torrents: 7,
            real_ip_header: "X-Real-IP".into(),
        },
        ws: WsConfig {
            listen: vec!["127.0.0.1:4".parse().unwrap()],
            tls_listen: vec![],
            announce_interval: 30,
            max_message_size: 2000,
            max_offers: 0,
            max_pending_offers: 8,
            offer_timeout: 9,
            max_outgoing_bytes: 4000,
            max_torrents_per_connection: 10,
            max_peer_ids_per_connection: 3,
            idle_timeout: 11,
        },
        tls: TlsConfig {
            certificate_path: "/etc/tracker/cert.pem".into(),
            private_key_path: "/etc/tracker/key.pem".into(),
        },
        access_list: AccessListConfig {
            mode: AccessListMode::White,
            path: "/etc/tracker/it's \"quoted\" ü.txt".into(),
        },
        xdp: XdpConfig {
            iface: "eth1".into(),
            attach_mode: XdpAttachMode::Generic,
            required: true,
            replace_existing: true,
            connect_in_kernel: false,
            scrape_in_kernel: false,
            scrape_map_entries: 1000,
            announce_in_kernel: false,
            announce_events_in_kernel: true,
            hot_torrents: 10,
            hot_pool_peers: 20,
            hot_min_rate: 9,
            kernel_refresh_ms: 500,
            ring_bytes: 1 << 16,
            pin_path: "/sys/fs/bpf/t2".into(),
            frame_count: 8192,
            zero_copy: false,
        },
        privileges: PrivilegesConfig {
            user: "nobody".into(),
            group: "nogroup".into(),
            chroot: "/var/empty".into(),
        },
        admin: AdminConfig {
            listen: vec!["[::1]:9".parse().unwrap(), "127.0.0.1:10".parse().unwrap()],
        },
        persistence: PersistenceConfig {
            path: "/var/lib/tracker/swarm.snapshot".into(),
            interval: 17,
        },
    };
    round_trip(&config);
    let mut no_udp = Config::default();
    no_udp.udp.listen.clear();
    round_trip(&no_udp);
}

#[test]
fn every_key_has_a_doc_comment() {
    let toml::Value::Table(root) = toml::Value::try_from(Config::default()).unwrap() else {
        panic!("config is not a table");
    };
    assert_eq!(
        tracker_config::undocumented_keys::<Config>(&root),
        Vec::<String>::new()
    );
}

#[test]
fn commented_toml_layout() {
    let mut config = Config::default();
    config.swarm.workers = 4;
    config.udp.workers = 4;
    let text = config.to_commented_toml();
    assert!(text.starts_with("# tracker-user configuration."), "{text}");
    assert!(text.contains("`tracker-user -c FILE`"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let preceded_by_comment = |needle: &str| {
        let at = lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("no line {needle:?} in\n{text}"));
        assert!(
            at > 0 && lines[at - 1].starts_with("# "),
            "{needle:?} lacks a comment:\n{text}"
        );
        at
    };
    let log_level = preceded_by_comment("log_level = \"info\"");
    let swarm = preceded_by_comment("[swarm]");
    let protocol = preceded_by_comment("[protocol]");
    let max_numwant = preceded_by_comment("max_numwant = 50");
    preceded_by_comment("default_numwant = 50");
    let udp = preceded_by_comment("[udp]");
    preceded_by_comment("listen = [\"0.0.0.0:6969\", \"[::]:6969\"]");
    preceded_by_comment("workers = 4");
    let access_list = preceded_by_comment("[access_list]");
    preceded_by_comment("mode = \"off\"");
    preceded_by_comment("path = \"\"");
    // Top-level scalars before any section, sections in struct order.
    assert!(log_level < swarm && swarm < protocol && protocol < max_numwant);
    assert!(max_numwant < udp && udp < access_list);
    assert_eq!(
        lines[max_numwant - 1],
        "# Most peers returned by one announce, whatever the client asks for."
    );
    // Every non-blank, non-comment line is a key or a header, each under a comment.
    for (i, line) in lines.iter().enumerate() {
        if !line.is_empty() && !line.starts_with('#') {
            assert!(lines[i - 1].starts_with("# "), "{line:?} lacks a comment");
        }
    }
}

#[test]
fn http_ws_settings_take_the_protocol_section_and_the_server_sections() {
    let (_file, loaded) = load_text(
        "[protocol]\nannounce_interval = 1800\ndefault_numwant = 20\nmax_numwant = 200\n\
         [http]\nmin_announce_interval = 30\nreal_ip_header = \"X-Real-IP\"\n\
         [ws]\nannounce_interval = 45\nidle_timeout = 9\n",
    );
    let s = loaded.unwrap().http_ws_settings();
    assert_eq!(
        (s.announce_interval, s.default_numwant, s.max_numwant),
        (1800, 20, 200)
    );
    assert_eq!(s.min_announce_interval, 30);
    assert_eq!(s.real_ip_header.as_deref(), Some("x-real-ip"));
    assert_eq!(s.ws_announce_interval, 45);
    assert_eq!(s.ws_idle_timeout, std::time::Duration::from_secs(9));
}
