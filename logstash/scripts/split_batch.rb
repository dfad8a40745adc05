# Event Trail's batch splitter: one bad element of a JSON array body costs only itself.
#
# The http input's json codec turns a body that is a JSON array into one event per element,
# unless one element is not an object: then the whole body becomes a single event tagged
# _jsonparsefailure, every good event in it kept only as text. This finds such an event, parses
# its [message] as an array again, and returns one new event per element: an object becomes an
# event exactly as the codec would have made it (LogStash::Event.new), anything else an event
# tagged _jsonparsefailure holding that element's JSON. The original is dropped (cancelled):
# every element is now its own event. Any other event passes through untouched.
#
# app/eventtrail/logstash/route.py models this for `eventtrail_check --route`;
# tests/test_logstash_scripts.py runs both on the same bodies and compares them.
require "json"

# The http input refuses bodies over its own limit, and the codec holds the whole body anyway;
# past this many elements the body stays one dead letter rather than fan out.
MAX_ELEMENTS = 10_000

def register(params)
end

def filter(event)
  return [event] unless split?(event)
  elements = JSON.parse(event.get("message"), max_nesting: false)
  return [event] unless elements.is_a?(Array) && elements.size <= MAX_ELEMENTS
  elements.map { |element| element_event(element) }
rescue Exception # not JSON after all, or anything unforeseen: keep the one dead letter
  [event]
end

def split?(event)
  tags = event.get("tags")
  message = event.get("message")
  tags.is_a?(Array) && tags.include?("_jsonparsefailure") &&
    message.is_a?(String) && message.lstrip.start_with?("[")
end

def element_event(element)
  if element.is_a?(Hash)
    LogStash::Event.new(element)
  else
    LogStash::Event.new("message" => JSON.generate(element, max_nesting: false), "tags" => ["_jsonparsefailure"])
  end
rescue Exception # an object LogStash::Event cannot hold (an @metadata that is not an object)
  LogStash::Event.new("message" => JSON.generate(element, max_nesting: false), "tags" => ["_jsonparsefailure"])
end
