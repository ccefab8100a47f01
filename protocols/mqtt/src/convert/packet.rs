//! A [`Publish`]'s QoS, packet id and DUP flag, which rumqttd 0.20 keeps `pub(crate)`.
//!
//! rumqttd's only public ways in and out of those fields are `Publish::serialize` and
//! `Publish::deserialize`, its MQTT-independent byte form (`flags, pkid, topic length, topic,
//! payload`). These helpers go through that form with the topic and payload left out, so they
//! touch five bytes and never copy a body; topic and payload are then set through their public
//! fields. The unit tests pin the layout, so a rumqttd upgrade that changes it fails loudly.

use bytes::Bytes;
use rumqttd::protocol::{Publish, QoS};

/// The fixed-header fields of a PUBLISH that rumqttd does not expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishHeader {
    /// Delivery QoS.
    pub qos: QoS,
    /// Packet identifier; meaningful only for QoS 1 and 2.
    pub pkid: u16,
    /// The DUP flag: a redelivery of a QoS 1 or 2 PUBLISH.
    pub dup: bool,
}

impl PublishHeader {
    /// QoS `qos`, packet id 0 (to be assigned by the session), not a duplicate.
    pub fn new(qos: QoS) -> Self {
        Self {
            qos,
            pkid: 0,
            dup: false,
        }
    }
}

/// Reads `publish`'s QoS, packet id and DUP flag.
pub fn publish_header(publish: &Publish) -> PublishHeader {
    let mut bare = publish.clone();
    bare.topic = Bytes::new();
    bare.payload = Bytes::new();
    let bytes = bare.serialize();
    let flags = bytes.first().copied().unwrap_or(0);
    let pkid = match (bytes.get(1), bytes.get(2)) {
        (Some(&high), Some(&low)) => u16::from_be_bytes([high, low]),
        _ => 0,
    };
    PublishHeader {
        qos: qos_from_bits((flags >> 1) & 0b11),
        pkid,
        dup: flags & 0b1000 != 0,
    }
}

/// A PUBLISH with every field given. `topic` and `payload` are moved in, never copied.
pub fn build_publish(topic: Bytes, payload: Bytes, retain: bool, header: PublishHeader) -> Publish {
    let flags =
        0b0011_0000 | u8::from(retain) | ((header.qos as u8) << 1) | (u8::from(header.dup) << 3);
    let [high, low] = header.pkid.to_be_bytes();
    // flags, packet id, empty topic; `deserialize` reads exactly these five bytes.
    let mut publish = Publish::deserialize(Bytes::copy_from_slice(&[flags, high, low, 0, 0]));
    publish.topic = topic;
    publish.payload = payload;
    publish
}

/// Sets `publish`'s QoS, packet id and DUP flag, keeping its topic, payload and retain flag.
pub fn set_publish_header(publish: &mut Publish, header: PublishHeader) {
    let topic = std::mem::take(&mut publish.topic);
    let payload = std::mem::take(&mut publish.payload);
    *publish = build_publish(topic, payload, publish.retain, header);
}

fn qos_from_bits(bits: u8) -> QoS {
    match bits {
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_round_trip() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for (pkid, dup, retain) in [(0, false, false), (1, true, true), (0xABCD, false, true)] {
                let header = PublishHeader { qos, pkid, dup };
                let payload = Bytes::from_static(b"body");
                let publish =
                    build_publish(Bytes::from_static(b"a/b"), payload.clone(), retain, header);
                assert_eq!(publish_header(&publish), header);
                assert_eq!(publish.retain, retain);
                assert_eq!(publish.topic, "a/b");
                // Same allocation: the payload was moved, not copied.
                assert_eq!(publish.payload.as_ptr(), payload.as_ptr());
            }
        }
    }

    #[test]
    fn header_matches_rumqttd_wire_layout() {
        let mut publish = Publish::new("t", "p", true);
        assert_eq!(
            publish_header(&publish),
            PublishHeader::new(QoS::AtMostOnce)
        );
        let header = PublishHeader {
            qos: QoS::ExactlyOnce,
            pkid: 7,
            dup: true,
        };
        set_publish_header(&mut publish, header);
        assert_eq!(publish_header(&publish), header);
        assert!(publish.retain);
        assert_eq!(publish.payload, "p");
        // rumqttd's own byte form agrees: flags 0x3D (publish, dup, QoS 2, retain), packet id 7.
        assert_eq!(&publish.serialize()[..3], &[0x3D, 0, 7]);
    }
}
