# Event Trail's type gate: a value Elasticsearch's mapping would refuse never reaches it.
#
# fields.json (rendered from app/eventtrail/schema.py) gives each schema field's mapping type.
# Walking that tree, a value of the wrong shape is removed, kept as JSON text under
# [_eventtrail_removed] (unmapped, so stored and never indexed) and the event tagged
# _eventtrail_bad_field:<field>: an object or array where a mapped object holds fields, an
# object where a keyword is, a non-number in a long or float, a non-boolean in a boolean. The
# rest of the event is kept. Without this, Elasticsearch refuses the whole document (400) and
# Logstash sends it to its on-disk dead letter queue, where nobody looks.
#
# app/eventtrail/logstash/gate.py is the same rule in Python, for `eventtrail_check --route`;
# tests/test_logstash_scripts.py runs both on the same events and compares them.
require "json"

LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1
FLOAT_MAX = 3.4028235e38
NUMERIC = /\A-?[0-9]{1,19}(\.[0-9]+)?\z/
# Kept as text this long at most: the removed value is for a person reading the dead letter.
KEEP = 2048

def register(params)
  types = JSON.parse(File.read(params.fetch("fields")))
  @tree = {}
  types.each do |name, type|
    next if name == "@timestamp" # Logstash's own Timestamp, parsed when the event was built
    parts = name.split(".")
    node = @tree
    parts[0..-2].each { |part| node = (node[part] ||= {}) }
    node[parts[-1]] = type
  end
end

def filter(event)
  begin
    walk(event, @tree, [])
  rescue Exception => e # never let a bug here stop the pipeline
    event.tag("_eventtrail_type_gate_error")
    event.set("[_eventtrail_type_gate_error]", e.class.name)
  end
  [event]
end

def walk(event, tree, prefix)
  tree.each do |key, spec|
    path = prefix + [key]
    ref = "[" + path.join("][") + "]"
    value = event.get(ref)
    if value.nil?
      # A null object: harmless to Elasticsearch, but a filter writing under it raises.
      event.remove(ref) if spec.is_a?(Hash) && event.include?(ref)
      next
    end
    if spec.is_a?(Hash)
      if value.is_a?(Hash)
        walk(event, spec, path)
      else
        reject(event, path, value)
      end
    elsif !fits?(spec, value)
      reject(event, path, value)
    end
  end
end

def reject(event, path, value)
  name = path.join(".")
  event.remove("[" + path.join("][") + "]")
  text = JSON.generate(value, max_nesting: false)
  removed = event.get("[_eventtrail_removed]")
  removed = [] unless removed.is_a?(Array)
  removed << { "field" => name, "value" => text[0, KEEP] }
  event.set("[_eventtrail_removed]", removed)
  event.tag("_eventtrail_bad_field:#{name}")
end

def scalar?(value)
  value.is_a?(String) || value.is_a?(Integer) || value.is_a?(Float) ||
    value == true || value == false
end

def long?(value)
  return value >= LONG_MIN && value <= LONG_MAX if value.is_a?(Integer)
  return value.finite? && value.abs <= LONG_MAX if value.is_a?(Float)
  value.is_a?(String) && NUMERIC.match?(value) && value.to_f.abs <= LONG_MAX
end

def float?(value)
  return value.abs <= FLOAT_MAX if value.is_a?(Integer)
  return value.finite? && value.abs <= FLOAT_MAX if value.is_a?(Float)
  value.is_a?(String) && NUMERIC.match?(value) && value.to_f.abs <= FLOAT_MAX
end

def one_fits?(type, value)
  case type
  when "long", "integer", "short", "byte" then long?(value)
  when "float", "double", "half_float", "scaled_float" then float?(value)
  when "boolean" then [true, false, "true", "false", ""].include?(value)
  when "ip", "date" then value.is_a?(String) || (type == "date" && value.is_a?(Integer))
  when "geo_point" then value.is_a?(String) || value.is_a?(Hash)
  else scalar?(value) # keyword, wildcard, match_only_text, text, constant_keyword
  end
end

# A field takes one value or a flat array of them, as Elasticsearch does.
def fits?(type, value)
  return value.all? { |item| item.nil? || one_fits?(type, item) } if value.is_a?(Array) && type != "geo_point"
  one_fits?(type, value)
end
