//! Lists the ALSA capture devices a user can pass as `device` (`zipvox devices`).
//!
//! Two sources, merged and de-duplicated by name:
//! - ALSA's device hints for the `pcm` interface: the names its configuration advertises
//!   (`default`, `sysdefault:CARD=…`, `dsnoop:…`, `pulse`, names from `~/.asoundrc` with a
//!   `hint` section), keeping the ones marked for input or for both directions;
//! - the kernel's sound cards: every PCM device with a capture stream, as
//!   `hw:CARD=<id>,DEV=<n>` (exact hardware formats and rates) and
//!   `plughw:CARD=<id>,DEV=<n>` (ALSA converts formats and channels), which also covers cards
//!   that ship without hints.
//!
//! Listing never fails because one card is unreadable: that card is skipped (with a debug log).

use alsa::card::Iter as CardIter;
use alsa::ctl::{Ctl, DeviceIter};
use alsa::device_name::HintIter;
use alsa::Direction;
use anyhow::{anyhow, Result};

/// One capture device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The name to put in `device` (`hw:CARD=Device,DEV=0`, `default`, …).
    pub name: String,
    /// Human-readable description; may span several lines (ALSA hints use `\n`).
    pub description: String,
}

/// All capture devices: ALSA hints first (in ALSA's order), then hardware devices not already
/// listed. An error only when ALSA cannot enumerate anything at all.
pub fn list_capture_devices() -> Result<Vec<DeviceInfo>> {
    let mut out: Vec<DeviceInfo> = Vec::new();
    let push = |out: &mut Vec<DeviceInfo>, name: String, description: String| {
        if !out.iter().any(|d| d.name == name) {
            out.push(DeviceInfo { name, description });
        }
    };

    let hints = HintIter::new_str(None, "pcm");
    let hints_ok = hints.is_ok();
    match hints {
        Ok(hints) => {
            for h in hints {
                if h.direction == Some(Direction::Playback) {
                    continue;
                }
                let Some(name) = h.name else { continue };
                push(&mut out, name, h.desc.unwrap_or_default());
            }
        }
        Err(e) => log::debug!("ALSA pcm hints unavailable: {e}"),
    }

    let mut cards_ok = true;
    for card in CardIter::new() {
        let card = match card {
            Ok(c) => c,
            Err(e) => {
                log::debug!("cannot enumerate sound cards: {e}");
                cards_ok = false;
                break;
            }
        };
        let index = card.get_index();
        let ctl = match Ctl::from_card(&card, false) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("sound card {index}: cannot open its control device: {e}");
                continue;
            }
        };
        let (id, card_name) = match ctl.card_info() {
            Ok(info) => (
                info.get_id().unwrap_or_default().to_string(),
                info.get_name().unwrap_or_default().to_string(),
            ),
            Err(_) => (String::new(), String::new()),
        };
        // `CARD=<id>` survives renumbering (USB order at boot); fall back to the index.
        let card_ref = if id.is_empty() {
            index.to_string()
        } else {
            format!("CARD={id}")
        };
        for dev in DeviceIter::new(&ctl) {
            let Ok(dev_u) = u32::try_from(dev) else {
                continue;
            };
            let Ok(info) = ctl.pcm_info(dev_u, 0, Direction::Capture) else {
                continue; // no capture stream on this device
            };
            let pcm_name = info.get_name().unwrap_or_default().to_string();
            let desc = format!("{card_name}, {pcm_name} (card {index}, device {dev})");
            let dev_ref = if id.is_empty() {
                format!("{card_ref},{dev}")
            } else {
                format!("{card_ref},DEV={dev}")
            };
            push(
                &mut out,
                format!("hw:{dev_ref}"),
                format!("{desc}\nDirect hardware device without any conversions"),
            );
            push(
                &mut out,
                format!("plughw:{dev_ref}"),
                format!("{desc}\nHardware device with format and channel conversions"),
            );
        }
    }

    if !hints_ok && !cards_ok {
        return Err(anyhow!(
            "ALSA cannot list devices (no configuration and no sound cards readable); check \
             that libasound's configuration is installed"
        ));
    }
    Ok(out)
}
