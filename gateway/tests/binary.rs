//! The `mqgate` binary as a child process: hash-password, check-config, run and SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::{default_config_path, TempDir, WAIT};
use mqgate_core::auth::{User, UserSpec, Users};

/// The binary, with no `MQGATE_*` or `RUST_LOG` from this process's environment.
fn mqgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mqgate"));
    command.env_remove("RUST_LOG");
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("MQGATE_")
        {
            command.env_remove(key);
        }
    }
    command
}

/// Waits for `child` to exit, at most [`WAIT`]; kills it and fails otherwise.
fn wait_bounded(child: Child) -> Output {
    let pid = child.id();
    let (done, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match exited.recv_timeout(WAIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("mqgate (pid {pid}) did not exit in time");
        }
    }
}

#[test]
fn hash_password_output_verifies() {
    let mut child = mqgate()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let output = wait_bounded(child);
    assert!(output.status.success(), "{output:?}");
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let users = Users::new([User::new(UserSpec {
        name: "alice".to_owned(),
        password_hash: hash,
        ..UserSpec::default()
    })
    .unwrap()])
    .unwrap();
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert!(users.authenticate("alice", b"correct horse", peer).is_ok());
    assert!(users
        .authenticate("alice", b"correct horse\n", peer)
        .is_err());
}

#[test]
fn hash_password_accepts_the_option_and_refuses_empty() {
    let output = wait_bounded(
        mqgate()
            .args(["hash-password", "--password", "guest"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap();
    assert!(mqgate_core::auth::verify_password(b"guest", hash.trim()));
    let output = wait_bounded(
        mqgate()
            .arg("hash-password")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the password is empty"));
}

#[test]
fn check_config_exits_0_on_the_default_file_and_1_on_a_bad_one() {
    let output = wait_bounded(
        mqgate()
            .args(["check-config", "--config"])
            .arg(default_config_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("config OK"));

    // A refused pre-declaration is caught too, naming the entry.
    let dir = TempDir::new("check-config");
    let path = dir.write(
        "bad.yaml",
        "bindings:\n  - {source: amq.topic, destination: missing}\n",
    );
    let output = wait_bounded(
        mqgate()
            .args(["check-config", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("config error at bindings[0]: "), "{stderr}");
}

#[test]
fn environment_override_reaches_the_binary() {
    let output = wait_bounded(
        mqgate()
            .args(["check-config", "--config"])
            .arg(default_config_path())
            .env("MQGATE_LIMITS__MAX_CONNECTIONS", "many")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("config error at limits.max_connections: "),
        "{stderr}"
    );
}

fn exit_status(child: Child) -> ExitStatus {
    wait_bounded(child).status
}

/// An MQTT 3.1.1 CONNECT: clean session, keepalive 60 s, empty client id, no user name.
const MQTT_CONNECT: [u8; 14] = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 0];

/// Connects to the MQTT listener named in the ready line and expects CONNACK accepted (the
/// client is anonymous, as `guest`, from loopback).
fn mqtt_connack(ready: &str) -> [u8; 4] {
    let mut stream = std::net::TcpStream::connect(listener_addr(ready, "mqtt")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(&MQTT_CONNECT).unwrap();
    let mut connack = [0u8; 4];
    std::io::Read::read_exact(&mut stream, &mut connack).unwrap();
    connack
}

/// The address of `protocol`'s listener in the ready line (`listeners=mqtt 127.0.0.1:P, ...`).
fn listener_addr(ready: &str, protocol: &str) -> std::net::SocketAddr {
    ready
        .split(&format!("{protocol} "))
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no {protocol} listener in {ready}"))
        .parse()
        .unwrap()
}

/// Connects to the STOMP listener named in the ready line with a STOMP 1.2 CONNECT as
/// guest/guest (from loopback); the reply's command line.
fn stomp_connected(ready: &str) -> String {
    let mut stream = std::net::TcpStream::connect(listener_addr(ready, "stomp")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
        .unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while reply.len() < 4096 {
        std::io::Read::read_exact(&mut stream, &mut byte).unwrap();
        if byte[0] == 0 {
            break;
        }
        reply.push(byte[0]);
    }
    let reply = String::from_utf8_lossy(&reply).into_owned();
    reply.lines().next().unwrap_or_default().to_owned()
}

/// Connects to the AMQP listener named in the ready line and sends the AMQP 0-9-1 protocol
/// header; the first six payload bytes of the method frame that answers (class, method and,
/// for `connection.start`, the version).
fn amqp_start(ready: &str) -> [u8; 6] {
    let mut stream = std::net::TcpStream::connect(listener_addr(ready, "amqp")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut header = [0u8; 7];
    std::io::Read::read_exact(&mut stream, &mut header).unwrap();
    assert_eq!(header[..3], [1, 0, 0], "a method frame on channel 0");
    let mut start = [0u8; 6];
    std::io::Read::read_exact(&mut stream, &mut start).unwrap();
    start
}

/// The default file as shipped, with the MQTT, STOMP and AMQP listeners moved to free loopback
/// ports (1883, 61613 and 5672 may be taken on a test machine).
#[test]
fn runs_the_default_config_until_sigterm() {
    let workdir = TempDir::new("run");
    let spawned = Instant::now();
    let mut child = mqgate()
        .arg("--config")
        .arg(default_config_path())
        .env("MQGATE_LISTENERS__MQTT__PLAIN", "127.0.0.1:0")
        .env("MQGATE_LISTENERS__STOMP__PLAIN", "127.0.0.1:0")
        .env("MQGATE_LISTENERS__AMQP__PLAIN", "127.0.0.1:0")
        .current_dir(workdir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let ready = loop {
        match received.recv_timeout(WAIT) {
            Ok(line) if line.contains("mqgate ready") => break line,
            Ok(_) => continue,
            Err(error) => {
                let _ = child.kill();
                panic!("no `mqgate ready` line: {error}");
            }
        }
    };
    let startup = spawned.elapsed();
    // Reported, not asserted: CI machines vary.
    eprintln!("mqgate startup (spawn to `mqgate ready`): {startup:?}; line: {ready}");
    assert!(ready.contains("listeners=mqtt 127.0.0.1:"), "{ready}");
    assert!(ready.contains("stomp 127.0.0.1:"), "{ready}");
    assert!(ready.contains("amqp 127.0.0.1:"), "{ready}");
    assert_eq!(mqtt_connack(&ready), [0x20, 2, 0, 0], "CONNACK accepted");
    assert_eq!(
        stomp_connected(&ready),
        "CONNECTED",
        "STOMP CONNECT accepted"
    );
    assert_eq!(
        amqp_start(&ready),
        [0, 10, 0, 10, 0, 9],
        "AMQP connection.start, version 0-9"
    );

    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = exit_status(child);
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    // The reader ends at EOF, which follows the exit.
    let mut rest = Vec::new();
    while let Ok(line) = received.recv_timeout(WAIT) {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|line| line.contains("mqgate stopped")),
        "{rest:?}"
    );
}
