//! Plain JS values for the page: objects with named fields, typed arrays (copies, never views of wasm
//! memory, which moves when it grows).

use wasm_bindgen::JsValue;

/// Set `obj[key] = value`.
pub(crate) fn set(obj: &js_sys::Object, key: &str, value: JsValue) {
    // Setting a field of a plain object cannot fail.
    let _ = js_sys::Reflect::set(obj, &JsValue::from_str(key), &value);
}

pub(crate) trait ToJs {
    fn to_js(&self) -> JsValue;
}

impl ToJs for [f32] {
    fn to_js(&self) -> JsValue {
        js_sys::Float32Array::from(self).into()
    }
}

impl ToJs for usize {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self as f64)
    }
}

impl ToJs for f64 {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self)
    }
}

/// `{name, shape, values}`: a layer's output (shape without the batch) or a weight tensor.
pub(crate) fn layer(name: &str, shape: &[usize], values: &[f32]) -> JsValue {
    let o = js_sys::Object::new();
    set(&o, "name", JsValue::from_str(name));
    let dims = js_sys::Array::new();
    for d in shape {
        dims.push(&d.to_js());
    }
    set(&o, "shape", dims.into());
    set(&o, "values", values.to_js());
    o.into()
}

/// `61706` as "61,706".
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
