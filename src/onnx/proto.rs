//! The few ONNX protobuf messages wgcnn reads and writes, with a hand-written codec (no `protoc`, no
//! generated code, no dependency): field numbers from `onnx.proto` v1.12 (IR 8, opset 17).
//!
//! Writing follows the official writer byte for byte where it matters: `dims` and `ints` as unpacked
//! varints, `floats` as unpacked fixed32, weights in `raw_data`. Reading accepts what any conforming
//! writer may produce: fields in any order, repeated scalars packed or not, tensor data in `raw_data`
//! or the typed fields, unknown fields skipped. Every length is checked against the bytes left, so a
//! truncated or corrupt file is an error, never a panic or a huge allocation.

/// A decoding error: what was being read and why it failed.
pub type DecodeResult<T> = std::result::Result<T, String>;

// ---------------------------------------------------------------------------------------------
// Wire format

/// A message being written.
#[derive(Default, Clone, Debug)]
pub struct Writer {
    pub buf: Vec<u8>,
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Writer {
    fn tag(&mut self, field: u32, wire: u8) {
        put_varint(&mut self.buf, (u64::from(field) << 3) | u64::from(wire));
    }
    /// An int64/int32/enum field (two's complement, not zigzag: -1 takes ten bytes).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.tag(field, 0);
        put_varint(&mut self.buf, v as u64);
        self
    }
    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.tag(field, 5);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.tag(field, 2);
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }
    pub fn message(&mut self, field: u32, m: &Writer) -> &mut Self {
        self.bytes(field, &m.buf)
    }
    /// A `StringStringEntryProto` (key 1, value 2).
    pub fn entry(&mut self, field: u32, (key, value): &(String, String)) -> &mut Self {
        let mut e = Writer::default();
        e.string(1, key).string(2, value);
        self.message(field, &e)
    }
}

/// One field as it arrived.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one message, in file order.
pub struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
}

pub fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, at: 0 }
}

fn get_varint(buf: &[u8], at: &mut usize) -> DecodeResult<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let Some(&b) = buf.get(*at) else {
            return Err(format!("truncated: a varint runs past the end at byte {}", *at));
        };
        *at += 1;
        if shift == 63 && b > 1 {
            return Err(format!("a varint longer than 64 bits ends at byte {}", *at));
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(format!("a varint longer than ten bytes ends at byte {}", *at))
}

fn take<'a>(buf: &'a [u8], at: &mut usize, n: u64) -> DecodeResult<&'a [u8]> {
    let left = (buf.len() - *at) as u64;
    if n > left {
        return Err(format!("truncated: a field of {n} bytes at byte {} has only {left} left", *at));
    }
    let s = &buf[*at..*at + n as usize];
    *at += n as usize;
    Ok(s)
}

impl<'a> Iterator for Fields<'a> {
    type Item = DecodeResult<(u32, Value<'a>)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        Some(self.read())
    }
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> DecodeResult<(u32, Value<'a>)> {
        let key = get_varint(self.buf, &mut self.at)?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(format!("field number {field} before byte {} is not valid", self.at));
        }
        let v = match wire {
            0 => Value::Varint(get_varint(self.buf, &mut self.at)?),
            1 => Value::Fixed64(u64::from_le_bytes(take(self.buf, &mut self.at, 8)?.try_into().unwrap_or([0; 8]))),
            2 => {
                let n = get_varint(self.buf, &mut self.at)?;
                Value::Bytes(take(self.buf, &mut self.at, n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(take(self.buf, &mut self.at, 4)?.try_into().unwrap_or([0; 4]))),
            w => {
                return Err(format!(
                    "wire type {w} (field {field}) before byte {} is not one protobuf uses here",
                    self.at
                ))
            }
        };
        Ok((field as u32, v))
    }
}

fn as_int(v: Value<'_>, what: &str) -> DecodeResult<i64> {
    match v {
        Value::Varint(x) => Ok(x as i64),
        _ => Err(format!("{what}: expected a varint")),
    }
}

fn as_bytes<'a>(v: Value<'a>, what: &str) -> DecodeResult<&'a [u8]> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(format!("{what}: expected a length-delimited field")),
    }
}

fn as_string(v: Value<'_>, what: &str) -> DecodeResult<String> {
    let b = as_bytes(v, what)?;
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what}: not UTF-8"))
}

fn as_float(v: Value<'_>, what: &str) -> DecodeResult<f32> {
    match v {
        Value::Fixed32(x) => Ok(f32::from_bits(x)),
        _ => Err(format!("{what}: expected a 32-bit float")),
    }
}

/// A `StringStringEntryProto` field: (key, value).
fn as_entry(v: Value<'_>, what: &str) -> DecodeResult<(String, String)> {
    let (mut key, mut value) = (String::new(), String::new());
    for f in fields(as_bytes(v, what)?) {
        let (k, v) = f?;
        match k {
            1 => key = as_string(v, "StringStringEntryProto.key")?,
            2 => value = as_string(v, "StringStringEntryProto.value")?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// A repeated int64 field, one element (unpacked) or a packed run.
fn push_ints(out: &mut Vec<i64>, v: Value<'_>, what: &str) -> DecodeResult<()> {
    match v {
        Value::Varint(x) => out.push(x as i64),
        Value::Bytes(b) => {
            let mut at = 0;
            while at < b.len() {
                out.push(get_varint(b, &mut at).map_err(|e| format!("{what}: {e}"))? as i64);
            }
        }
        _ => return Err(format!("{what}: expected varints")),
    }
    Ok(())
}

/// A repeated float field, one element (unpacked) or a packed run.
fn push_floats(out: &mut Vec<f32>, v: Value<'_>, what: &str) -> DecodeResult<()> {
    match v {
        Value::Fixed32(x) => out.push(f32::from_bits(x)),
        Value::Bytes(b) if b.len() % 4 == 0 => {
            out.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        }
        Value::Bytes(b) => return Err(format!("{what}: a packed run of {} bytes is not whole floats", b.len())),
        _ => return Err(format!("{what}: expected 32-bit floats")),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Messages

/// `TensorProto.DataType` values wgcnn meets.
pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;

/// `TensorProto`: an initializer (or a `Constant`'s value).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub raw_data: Vec<u8>,
    pub float_data: Vec<f32>,
    pub int64_data: Vec<i64>,
    /// `data_location = EXTERNAL`: the data lives in another file (`external_data` says where:
    /// `location`, `offset`, `length`), read by [`crate::onnx::import_file`] from beside the model.
    pub external: bool,
    pub external_data: Vec<(String, String)>,
}

impl Tensor {
    /// A float32 tensor with its data in `raw_data` (little-endian), as torch and onnx write them.
    pub fn float(name: &str, dims: &[usize], values: &[f32]) -> Tensor {
        Tensor {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Tensor::default()
        }
    }

    pub fn encode(&self) -> Writer {
        let mut w = Writer::default();
        for &d in &self.dims {
            w.int(1, d);
        }
        w.int(2, i64::from(self.data_type));
        w.string(8, &self.name);
        if self.external {
            for entry in &self.external_data {
                w.entry(13, entry);
            }
            w.int(14, 1);
        } else if !self.raw_data.is_empty() || (self.float_data.is_empty() && self.int64_data.is_empty()) {
            w.bytes(9, &self.raw_data);
        }
        if !self.float_data.is_empty() {
            let packed: Vec<u8> = self.float_data.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.bytes(4, &packed);
        }
        if !self.int64_data.is_empty() {
            let mut packed = Vec::new();
            self.int64_data.iter().for_each(|&v| put_varint(&mut packed, v as u64));
            w.bytes(7, &packed);
        }
        w
    }

    pub fn decode(buf: &[u8]) -> DecodeResult<Tensor> {
        let mut t = Tensor::default();
        for f in fields(buf) {
            let (n, v) = f?;
            match n {
                1 => push_ints(&mut t.dims, v, "TensorProto.dims")?,
                2 => t.data_type = as_int(v, "TensorProto.data_type")? as i32,
                4 => push_floats(&mut t.float_data, v, "TensorProto.float_data")?,
                7 => push_ints(&mut t.int64_data, v, "TensorProto.int64_data")?,
                8 => t.name = as_string(v, "TensorProto.name")?,
                9 => t.raw_data = as_bytes(v, "TensorProto.raw_data")?.to_vec(),
                13 => t.external_data.push(as_entry(v, "TensorProto.external_data")?),
                14 => t.external = as_int(v, "TensorProto.data_location")? == 1,
                _ => {}
            }
        }
        Ok(t)
    }

    /// The element count its dims give (`None` for a negative dim or an overflow).
    pub fn len(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |acc, &d| usize::try_from(d).ok().and_then(|d| acc.checked_mul(d)))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The values of a float32 tensor, checked against its dims.
    pub fn floats(&self) -> DecodeResult<Vec<f32>> {
        if self.external {
            return Err("its data is in an external file, which only a model read from a file can reach".into());
        }
        self.floats_in(&self.raw_data)
    }

    /// Where its external data lies: (location, offset, length if given).
    pub fn external_location(&self) -> DecodeResult<(String, u64, Option<u64>)> {
        let get = |k: &str| self.external_data.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let location = get("location").ok_or("external data without a location")?.to_string();
        let num = |k: &str| -> DecodeResult<Option<u64>> {
            get(k)
                .map(|v| v.trim().parse::<u64>().map_err(|_| format!("external data {k} {v:?} is not a number")))
                .transpose()
        };
        Ok((location, num("offset")?.unwrap_or(0), num("length")?))
    }

    /// The values of a float32 tensor whose bytes are `raw` (its `raw_data`, or its external data),
    /// checked against its dims.
    pub fn floats_in(&self, raw: &[u8]) -> DecodeResult<Vec<f32>> {
        if self.data_type != FLOAT {
            return Err(format!("data type {} ({}), expected float32", self.data_type, type_name(self.data_type)));
        }
        let n = self.len().ok_or_else(|| format!("dims {:?} are not a size", self.dims))?;
        let values: Vec<f32> = if !raw.is_empty() {
            if raw.len() as u64 != 4 * n as u64 {
                return Err(format!(
                    "dims {:?} need {} bytes of float32, raw_data holds {}",
                    self.dims,
                    4 * n as u64,
                    raw.len()
                ));
            }
            raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        } else {
            self.float_data.clone()
        };
        if values.len() != n {
            return Err(format!("dims {:?} need {n} values, the tensor holds {}", self.dims, values.len()));
        }
        Ok(values)
    }

    /// The values of an int64 tensor, checked against its dims.
    pub fn ints(&self) -> DecodeResult<Vec<i64>> {
        if self.data_type != INT64 {
            return Err(format!("data type {} ({}), expected int64", self.data_type, type_name(self.data_type)));
        }
        let n = self.len().ok_or_else(|| format!("dims {:?} are not a size", self.dims))?;
        let values: Vec<i64> = if !self.raw_data.is_empty() {
            if self.raw_data.len() as u64 != 8 * n as u64 {
                return Err(format!(
                    "dims {:?} need {} bytes of int64, raw_data holds {}",
                    self.dims,
                    8 * n,
                    self.raw_data.len()
                ));
            }
            self.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
        } else {
            self.int64_data.clone()
        };
        if values.len() != n {
            return Err(format!("dims {:?} need {n} values, the tensor holds {}", self.dims, values.len()));
        }
        Ok(values)
    }
}

/// A `DataType` value's name, for messages.
pub fn type_name(t: i32) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        16 => "bfloat16",
        _ => "another type",
    }
}

/// `AttributeProto` (the kinds wgcnn meets: one float, int, string or tensor; lists of floats or ints).
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(Tensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    /// A kind wgcnn has no use for (graphs, lists of strings or tensors, …): its `AttributeType` number.
    Other(i64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
}

impl Attribute {
    pub fn int(name: &str, v: i64) -> Attribute {
        Attribute { name: name.into(), value: AttrValue::Int(v) }
    }
    pub fn float(name: &str, v: f32) -> Attribute {
        Attribute { name: name.into(), value: AttrValue::Float(v) }
    }
    pub fn ints(name: &str, v: &[i64]) -> Attribute {
        Attribute { name: name.into(), value: AttrValue::Ints(v.to_vec()) }
    }

    pub fn encode(&self) -> Writer {
        let mut w = Writer::default();
        w.string(1, &self.name);
        match &self.value {
            AttrValue::Float(f) => {
                w.float(2, *f).int(20, 1);
            }
            AttrValue::Int(i) => {
                w.int(3, *i).int(20, 2);
            }
            AttrValue::String(s) => {
                w.string(4, s).int(20, 3);
            }
            AttrValue::Tensor(t) => {
                w.message(5, &t.encode()).int(20, 4);
            }
            AttrValue::Floats(fs) => {
                fs.iter().for_each(|&f| {
                    w.float(7, f);
                });
                w.int(20, 6);
            }
            AttrValue::Ints(is) => {
                is.iter().for_each(|&i| {
                    w.int(8, i);
                });
                w.int(20, 7);
            }
            AttrValue::Other(t) => {
                w.int(20, *t);
            }
        }
        w
    }

    pub fn decode(buf: &[u8]) -> DecodeResult<Attribute> {
        let (mut name, mut ty) = (String::new(), 0i64);
        let (mut f, mut i, mut s, mut t) = (None, None, None, None);
        let (mut floats, mut ints) = (Vec::new(), Vec::new());
        for fl in fields(buf) {
            let (n, v) = fl?;
            match n {
                1 => name = as_string(v, "AttributeProto.name")?,
                2 => f = Some(as_float(v, "AttributeProto.f")?),
                3 => i = Some(as_int(v, "AttributeProto.i")?),
                4 => s = Some(String::from_utf8_lossy(as_bytes(v, "AttributeProto.s")?).into_owned()),
                5 => t = Some(Tensor::decode(as_bytes(v, "AttributeProto.t")?)?),
                7 => push_floats(&mut floats, v, "AttributeProto.floats")?,
                8 => push_ints(&mut ints, v, "AttributeProto.ints")?,
                20 => ty = as_int(v, "AttributeProto.type")?,
                _ => {}
            }
        }
        let value = match ty {
            1 => AttrValue::Float(f.unwrap_or(0.0)),
            2 => AttrValue::Int(i.unwrap_or(0)),
            3 => AttrValue::String(s.unwrap_or_default()),
            4 => AttrValue::Tensor(t.unwrap_or_default()),
            6 => AttrValue::Floats(floats),
            7 => AttrValue::Ints(ints),
            // IR < 2 files may leave `type` out: infer it from the field present.
            0 if f.is_some() => AttrValue::Float(f.unwrap_or(0.0)),
            0 if i.is_some() => AttrValue::Int(i.unwrap_or(0)),
            0 if s.is_some() => AttrValue::String(s.unwrap_or_default()),
            0 if !ints.is_empty() => AttrValue::Ints(ints),
            0 if !floats.is_empty() => AttrValue::Floats(floats),
            other => AttrValue::Other(other),
        };
        Ok(Attribute { name, value })
    }
}

/// `NodeProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

impl Node {
    pub fn encode(&self) -> Writer {
        let mut w = Writer::default();
        self.inputs.iter().for_each(|i| {
            w.string(1, i);
        });
        self.outputs.iter().for_each(|o| {
            w.string(2, o);
        });
        w.string(3, &self.name).string(4, &self.op_type);
        self.attributes.iter().for_each(|a| {
            w.message(5, &a.encode());
        });
        if !self.domain.is_empty() {
            w.string(7, &self.domain);
        }
        w
    }

    pub fn decode(buf: &[u8]) -> DecodeResult<Node> {
        let mut n = Node::default();
        for f in fields(buf) {
            let (k, v) = f?;
            match k {
                1 => n.inputs.push(as_string(v, "NodeProto.input")?),
                2 => n.outputs.push(as_string(v, "NodeProto.output")?),
                3 => n.name = as_string(v, "NodeProto.name")?,
                4 => n.op_type = as_string(v, "NodeProto.op_type")?,
                5 => n.attributes.push(Attribute::decode(as_bytes(v, "NodeProto.attribute")?)?),
                7 => n.domain = as_string(v, "NodeProto.domain")?,
                _ => {}
            }
        }
        Ok(n)
    }

    /// The attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.iter().rev().find(|a| a.name == name).map(|a| &a.value)
    }
}

/// One dimension of a value's shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    Value(i64),
    Param(String),
    Unknown,
}

/// `ValueInfoProto` of a tensor: name, element type and shape (`None`: rank unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i32,
    pub shape: Option<Vec<Dim>>,
}

impl ValueInfo {
    pub fn encode(&self) -> Writer {
        let mut shape = Writer::default();
        for d in self.shape.iter().flatten() {
            let mut dim = Writer::default();
            match d {
                Dim::Value(v) => {
                    dim.int(1, *v);
                }
                Dim::Param(p) => {
                    dim.string(2, p);
                }
                Dim::Unknown => {}
            }
            shape.message(1, &dim);
        }
        let mut tensor = Writer::default();
        tensor.int(1, i64::from(self.elem_type));
        if self.shape.is_some() {
            tensor.message(2, &shape);
        }
        let mut ty = Writer::default();
        ty.message(1, &tensor);
        let mut w = Writer::default();
        w.string(1, &self.name).message(2, &ty);
        w
    }

    pub fn decode(buf: &[u8]) -> DecodeResult<ValueInfo> {
        let mut vi = ValueInfo { name: String::new(), elem_type: 0, shape: None };
        for f in fields(buf) {
            let (k, v) = f?;
            match k {
                1 => vi.name = as_string(v, "ValueInfoProto.name")?,
                2 => {
                    for f in fields(as_bytes(v, "ValueInfoProto.type")?) {
                        let (k, v) = f?;
                        if k != 1 {
                            continue; // sequence, map, optional, …: no tensor type, left as unknown
                        }
                        for f in fields(as_bytes(v, "TypeProto.tensor_type")?) {
                            let (k, v) = f?;
                            match k {
                                1 => vi.elem_type = as_int(v, "TypeProto.Tensor.elem_type")? as i32,
                                2 => vi.shape = Some(decode_shape(as_bytes(v, "TypeProto.Tensor.shape")?)?),
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(vi)
    }
}

fn decode_shape(buf: &[u8]) -> DecodeResult<Vec<Dim>> {
    let mut dims = Vec::new();
    for f in fields(buf) {
        let (k, v) = f?;
        if k != 1 {
            continue;
        }
        let mut d = Dim::Unknown;
        for f in fields(as_bytes(v, "TensorShapeProto.dim")?) {
            let (k, v) = f?;
            match k {
                1 => d = Dim::Value(as_int(v, "Dimension.dim_value")?),
                2 => d = Dim::Param(as_string(v, "Dimension.dim_param")?),
                _ => {}
            }
        }
        dims.push(d);
    }
    Ok(dims)
}

/// `GraphProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

impl Graph {
    pub fn encode(&self) -> Writer {
        let mut w = Writer::default();
        self.nodes.iter().for_each(|n| {
            w.message(1, &n.encode());
        });
        w.string(2, &self.name);
        self.initializers.iter().for_each(|t| {
            w.message(5, &t.encode());
        });
        self.inputs.iter().for_each(|v| {
            w.message(11, &v.encode());
        });
        self.outputs.iter().for_each(|v| {
            w.message(12, &v.encode());
        });
        w
    }

    pub fn decode(buf: &[u8]) -> DecodeResult<Graph> {
        let mut g = Graph::default();
        for f in fields(buf) {
            let (k, v) = f?;
            match k {
                1 => g.nodes.push(Node::decode(as_bytes(v, "GraphProto.node")?)?),
                2 => g.name = as_string(v, "GraphProto.name")?,
                5 => g.initializers.push(Tensor::decode(as_bytes(v, "GraphProto.initializer")?)?),
                11 => g.inputs.push(ValueInfo::decode(as_bytes(v, "GraphProto.input")?)?),
                12 => g.outputs.push(ValueInfo::decode(as_bytes(v, "GraphProto.output")?)?),
                15 => return Err("sparse initializers are not supported".into()),
                _ => {}
            }
        }
        Ok(g)
    }
}

/// `ModelProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub ir_version: i64,
    pub producer_name: String,
    pub producer_version: String,
    pub doc_string: String,
    /// `(domain, version)`; the domain `""` is the default `ai.onnx`.
    pub opsets: Vec<(String, i64)>,
    pub graph: Graph,
    pub metadata: Vec<(String, String)>,
}

impl Model {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.int(1, self.ir_version).string(2, &self.producer_name).string(3, &self.producer_version);
        if !self.doc_string.is_empty() {
            w.string(6, &self.doc_string);
        }
        w.message(7, &self.graph.encode());
        for (domain, version) in &self.opsets {
            let mut o = Writer::default();
            o.string(1, domain).int(2, *version);
            w.message(8, &o);
        }
        for entry in &self.metadata {
            w.entry(14, entry);
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> DecodeResult<Model> {
        let mut m = Model::default();
        let mut graph = None;
        for f in fields(buf) {
            let (k, v) = f?;
            match k {
                1 => m.ir_version = as_int(v, "ModelProto.ir_version")?,
                2 => m.producer_name = as_string(v, "ModelProto.producer_name")?,
                3 => m.producer_version = as_string(v, "ModelProto.producer_version")?,
                6 => m.doc_string = as_string(v, "ModelProto.doc_string")?,
                7 => graph = Some(Graph::decode(as_bytes(v, "ModelProto.graph")?)?),
                8 => {
                    let (mut domain, mut version) = (String::new(), 0);
                    for f in fields(as_bytes(v, "ModelProto.opset_import")?) {
                        let (k, v) = f?;
                        match k {
                            1 => domain = as_string(v, "OperatorSetIdProto.domain")?,
                            2 => version = as_int(v, "OperatorSetIdProto.version")?,
                            _ => {}
                        }
                    }
                    m.opsets.push((domain, version));
                }
                14 => m.metadata.push(as_entry(v, "ModelProto.metadata_props")?),
                _ => {}
            }
        }
        m.graph = graph.ok_or("no graph: not an ONNX model (or not one this reader understands)")?;
        Ok(m)
    }

    /// The metadata value of `key`, if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_including_negative_ints() {
        for v in [0i64, 1, 127, 128, 300, -1, i64::MIN, i64::MAX] {
            let mut w = Writer::default();
            w.int(3, v);
            let (k, got) = fields(&w.buf).next().unwrap().unwrap();
            assert_eq!((k, as_int(got, "x").unwrap()), (3, v));
        }
        // -1 is ten bytes after the one-byte tag, as protobuf writes an int64.
        let mut w = Writer::default();
        w.int(1, -1);
        assert_eq!(w.buf.len(), 11);
    }

    #[test]
    fn packed_and_unpacked_repeated_fields_both_read() {
        let mut unpacked = Writer::default();
        unpacked.int(8, 2).int(8, -3);
        let mut packed_run = Vec::new();
        put_varint(&mut packed_run, 2);
        put_varint(&mut packed_run, (-3i64) as u64);
        let mut packed = Writer::default();
        packed.bytes(8, &packed_run);
        for w in [unpacked, packed] {
            let mut out = Vec::new();
            for f in fields(&w.buf) {
                push_ints(&mut out, f.unwrap().1, "ints").unwrap();
            }
            assert_eq!(out, vec![2, -3]);
        }
    }

    #[test]
    fn a_model_round_trips_and_truncations_are_errors() {
        let node = Node {
            name: "conv1".into(),
            op_type: "Conv".into(),
            inputs: vec!["input".into(), "conv1.weight".into()],
            outputs: vec!["conv1".into()],
            attributes: vec![Attribute::ints("pads", &[1, 1, 1, 1]), Attribute::float("epsilon", 1e-5)],
            ..Node::default()
        };
        let m = Model {
            ir_version: 8,
            producer_name: "wgcnn".into(),
            opsets: vec![(String::new(), 17)],
            graph: Graph {
                name: "g".into(),
                nodes: vec![node],
                initializers: vec![Tensor::float("conv1.weight", &[2, 1, 1, 1], &[0.5, -2.0])],
                inputs: vec![ValueInfo {
                    name: "input".into(),
                    elem_type: FLOAT,
                    shape: Some(vec![Dim::Param("N".into()), Dim::Value(1), Dim::Value(3), Dim::Value(3)]),
                }],
                outputs: vec![ValueInfo { name: "conv1".into(), elem_type: FLOAT, shape: None }],
            },
            metadata: vec![("k".into(), "v".into())],
            ..Model::default()
        };
        let bytes = m.encode();
        assert_eq!(Model::decode(&bytes).unwrap(), m);
        assert_eq!(m.graph.initializers[0].floats().unwrap(), vec![0.5, -2.0]);
        // Every truncation is an error (or, cut at a field boundary, a model missing its later fields),
        // never a panic.
        for cut in 0..bytes.len() {
            if let Ok(d) = Model::decode(&bytes[..cut]) {
                assert_ne!(d, m, "cut at {cut}");
            }
        }
        assert!(Model::decode(&[0xff; 12]).is_err());
    }

    #[test]
    fn tensor_data_is_checked_against_its_dims() {
        let mut t = Tensor::float("w", &[2, 3], &[1.0; 6]);
        assert_eq!(t.floats().unwrap().len(), 6);
        t.raw_data.truncate(20);
        assert!(t.floats().unwrap_err().contains("need 24 bytes"));
        let t = Tensor { dims: vec![2], data_type: FLOAT, float_data: vec![1.0, 2.0], ..Tensor::default() };
        assert_eq!(t.floats().unwrap(), vec![1.0, 2.0]);
        let t = Tensor { dims: vec![-1], data_type: FLOAT, ..Tensor::default() };
        assert!(t.floats().is_err());
    }
}
