# Runs the pipeline's ruby filter scripts (logstash/scripts/) outside Logstash, on MRI Ruby, the
# way logstash-filter-ruby runs a `path` script: the file is instance_eval'd in its own object,
# `register(script_params)` once, then `filter(event)` per event, which returns the events that
# go on. LogStash::Event here is a stand-in with the behaviour the scripts rely on: [a][b]
# references, tag, and a constructor that treats @metadata, tags and @timestamp as
# org.logstash.Event does (the same rules as eventtrail.logstash.route._new_event).
#
# stdin: one JSON object per line, {"script": "type_gate.rb", "params": {...}, "event": {...}}.
# stdout: one JSON array per line, the events filter returned ({"cancelled": true} marks none).
require "json"
require "time"

module LogStash
  class Event
    attr_reader :data

    def initialize(data = {})
      raise TypeError, "not an object" unless data.is_a?(Hash)
      @data = data.dup
      if @data.key?("@metadata") && !@data.delete("@metadata").is_a?(Hash)
        raise TypeError, "@metadata is not an object" # null too: Logstash casts it to a map
      end
      @data["@version"] ||= "1"
      tags = @data["tags"]
      if @data.key?("tags") && !(tags.is_a?(String) || (tags.is_a?(Array) && tags.all? { |t| t.is_a?(String) }))
        @data["_tags"] = [tags]
        @data["tags"] = ["_tagsparsefailure"]
      end
      stamp = @data["@timestamp"]
      if !stamp.nil? && !iso8601?(stamp)
        tag("_timestampparsefailure")
        @data["_@timestamp"] = stamp
      end
    end

    def iso8601?(value)
      value.is_a?(String) && !!Time.iso8601(value)
    rescue ArgumentError
      false
    end

    def path(ref)
      ref.start_with?("[") ? ref.scan(/\[([^\[\]]+)\]/).flatten : [ref]
    end

    def get(ref)
      path(ref).reduce(@data) do |node, key|
        case node
        when Hash then node[key]
        when Array then (Integer(key, exception: false) && node[Integer(key)])
        else return nil
        end
      end
    end

    def set(ref, value)
      keys = path(ref)
      node = keys[0..-2].reduce(@data) do |parent, key|
        child = parent.is_a?(Hash) ? parent[key] : nil
        if child.nil?
          raise ArgumentError, "cannot set [#{key}] on a scalar" unless parent.is_a?(Hash)
          child = parent[key] = {}
        end
        child
      end
      raise ArgumentError, "cannot set on a scalar" unless node.is_a?(Hash)
      node[keys[-1]] = value
    end

    def include?(ref)
      keys = path(ref)
      parent = keys.size == 1 ? @data : get("[" + keys[0..-2].join("][") + "]")
      parent.is_a?(Hash) && parent.key?(keys[-1])
    end

    def remove(ref)
      keys = path(ref)
      parent = keys.size == 1 ? @data : get("[" + keys[0..-2].join("][") + "]")
      parent.delete(keys[-1]) if parent.is_a?(Hash)
    end

    def tag(name)
      tags = @data["tags"]
      if tags.nil? then @data["tags"] = [name]
      elsif tags.is_a?(Array) then tags << name unless tags.include?(name)
      else @data["tags"] = tags == name ? [tags] : [tags, name]
      end
    end

    def to_hash
      @data
    end
  end
end

class Script
  def initialize(path, params)
    instance_eval(File.read(path), path, 1)
    register(params)
  end
end

SCRIPTS = {}
$stdout.sync = true
$stdin.each_line do |line|
  job = JSON.parse(line, max_nesting: false)
  key = [job["script"], job["params"]]
  script = (SCRIPTS[key] ||= Script.new(job["script"], job["params"] || {}))
  begin
    event = LogStash::Event.new(job["event"])
  rescue TypeError # the codec cannot build it either: it never reaches a filter
    puts "null"
    next
  end
  events = script.filter(event)
  puts JSON.generate(events.map(&:to_hash), max_nesting: false)
end
