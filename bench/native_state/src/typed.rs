//! The stored subject state (sinks/state_codec.py) as typed Rust structs, borrowing from the JSON text
//! where serde can: the shape a native rules core would hold a state in. Every section of the
//! states the benchmark makes is typed; a section whose inner shape varies more (objections,
//! repairs, a publicity track, a candidate date) is kept as its raw JSON text. The program checks
//! that writing a state parsed this way gives back the same bytes (`bytes_out_per_in`).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

type S<'a> = Cow<'a, str>;
type Raw<'a> = &'a RawValue;

#[derive(Serialize, Deserialize)]
pub struct State<'a> {
    // in the order the rules core writes the sections (absent ones are skipped)
    #[serde(borrow)] pub id: S<'a>,
    #[serde(borrow)] pub id_kind: S<'a>,
    #[serde(borrow)] pub names: Vec<S<'a>>,
    #[serde(borrow)] pub ids: IndexMap<S<'a>, S<'a>>,
    #[serde(borrow)] pub category: Option<S<'a>>,
    #[serde(borrow)] pub flags: Vec<S<'a>>,
    #[serde(borrow)] pub records: IndexMap<S<'a>, Record<'a>>,
    pub updated_ms: i64,
    pub version: i64,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub identity_at: Option<IdentityAt<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub timeline: Option<Timeline<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub facts: Option<IndexMap<S<'a>, Fact<'a>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub basis: Option<serde_json::Value>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub facts_rules: Option<S<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")] pub evaluation: Option<serde_json::Value>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub as_of: Option<S<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub awaiting_feedback: Option<IndexMap<S<'a>, S<'a>>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub objections: Option<Raw<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub repairs: Option<Raw<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub registrations_seen: Option<Raw<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub registered: Option<Raw<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub feedback: Option<Raw<'a>>,
}

#[derive(Serialize, Deserialize)]
pub struct IdentityAt<'a> {
    pub v: i64,
    #[serde(borrow)] pub names: IndexMap<S<'a>, (S<'a>, i64, S<'a>, S<'a>)>,
    #[serde(borrow)] pub ids: IndexMap<S<'a>, (S<'a>, i64, S<'a>, S<'a>)>,
    #[serde(borrow, default)] pub category: Option<(S<'a>, i64, S<'a>, S<'a>)>,
}

#[derive(Serialize, Deserialize)]
pub struct Record<'a> {
    #[serde(borrow)] pub kind: S<'a>,
    #[serde(borrow, default)] pub action_kind: Option<S<'a>>,
    #[serde(borrow, default)] pub doc_no: Option<S<'a>>,
    #[serde(borrow, default)] pub source_unit: Option<S<'a>>,
    #[serde(borrow, default)] pub source_unit_code: Option<S<'a>>,
    #[serde(borrow, default)] pub decision_date: Option<S<'a>>,
    #[serde(borrow, default)] pub severity: Option<S<'a>>,
    #[serde(borrow, default)] pub domain: Option<S<'a>>,
    #[serde(borrow, default)] pub content: Option<Content<'a>>,
    #[serde(borrow, default)] pub hash: Option<S<'a>>,
    #[serde(borrow)] pub versions: IndexMap<S<'a>, (i64, S<'a>)>,
    #[serde(borrow)] pub others: IndexMap<S<'a>, Content<'a>>,
    pub version: i64,
    pub first_ms: i64,
    pub updated_ms: i64,
    #[serde(borrow)] pub seen: Vec<S<'a>>,
    #[serde(borrow)] pub status: S<'a>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub deletion: Option<Raw<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")] pub via: Option<S<'a>>,
}

#[derive(Serialize, Deserialize)]
pub struct Content<'a> {
    #[serde(borrow)] pub kind: S<'a>,
    #[serde(borrow, default)] pub action_kind: Option<S<'a>>,
    #[serde(borrow, default)] pub source_unit: Option<S<'a>>,
    #[serde(borrow, default)] pub source_unit_code: Option<S<'a>>,
    #[serde(borrow, default)] pub doc_no: Option<S<'a>>,
    #[serde(borrow, default)] pub subject_name: Option<S<'a>>,
    #[serde(borrow, default)] pub subject_category: Option<S<'a>>,
    #[serde(borrow)] pub ids: IndexMap<S<'a>, S<'a>>,
    #[serde(borrow)] pub id_flags: Vec<S<'a>>,
    #[serde(borrow, default)] pub decision_date: Option<S<'a>>,
    #[serde(borrow, default)] pub severity: Option<S<'a>>,
    #[serde(borrow, default)] pub domain: Option<S<'a>>,
    pub revoked: bool,
    #[serde(borrow, default)] pub legal_rep: Option<LegalRep<'a>>,
    pub simplified_procedure: bool,
    #[serde(borrow)] pub fields: IndexMap<S<'a>, Raw<'a>>,
    #[serde(borrow, default)] pub event_id: Option<S<'a>>,
}

#[derive(Serialize, Deserialize)]
pub struct LegalRep<'a> {
    #[serde(borrow, default)] pub name: Option<S<'a>>,
    #[serde(borrow, default)] pub id_no: Option<S<'a>>,
}

#[derive(Serialize, Deserialize)]
pub struct Timeline<'a> {
    #[serde(borrow)] pub lists: IndexMap<S<'a>, Vec<Change<'a>>>,
    #[serde(borrow)] pub publicity: IndexMap<S<'a>, Raw<'a>>,
}

#[derive(Serialize, Deserialize)]
pub struct Change<'a> {
    #[serde(borrow)] pub change_id: S<'a>,
    #[serde(borrow)] pub list: S<'a>,
    #[serde(borrow)] pub kind: S<'a>,
    #[serde(borrow, default)] pub domain: Option<S<'a>>,
    #[serde(borrow)] pub transition: S<'a>,
    #[serde(borrow)] pub effective_date: S<'a>,
    #[serde(borrow)] pub causes: Vec<Raw<'a>>,
    #[serde(borrow, default)] pub cause_kind: Option<S<'a>>,
    #[serde(borrow, default)] pub cause_decision: Option<Raw<'a>>,
}

#[derive(Serialize, Deserialize)]
pub struct Fact<'a> {
    #[serde(borrow, default)] pub d: Option<S<'a>>,
    pub adverse: bool,
    #[serde(borrow)] pub cands: Vec<Raw<'a>>,
    #[serde(borrow, rename = "pub", default)] pub publicity: Option<Raw<'a>>,
    #[serde(borrow, default)] pub removal: Option<Raw<'a>>,
}
