# frozen_string_literal: true

require 'json'

module Walden
  # The crontab entry Chef's cron resource wrote for WAL-E: found, saved at
  # migration and turned back into cron resource properties at rollback.
  module Crontab
    # The environment lines Chef writes and the cron properties they come from.
    ENV_PROPERTIES = { 'MAILTO' => 'mailto', 'PATH' => 'path', 'HOME' => 'home', 'SHELL' => 'shell' }.freeze
    ENV_LINE_RE = /\A([A-Za-z_][A-Za-z0-9_]*)=(.*)\z/.freeze

    # One entry; time is set instead of the five fields for "@daily" lines.
    Entry = Struct.new(:name, :user, :minute, :hour, :day, :month, :weekday, :time, :command, :environment,
                       keyword_init: true)

    module_function

    # Chef's layout: "# Chef Name: <name>", optional NAME=value lines, then
    # the schedule and the command.
    def find(crontab, name, user)
      lines = crontab.to_s.lines.map(&:chomp)
      start = lines.index("# Chef Name: #{name}")
      start && parse_after(lines[(start + 1)..], name, user)
    end

    def parse_after(lines, name, user)
      env = {}
      lines.each do |line|
        next if line.strip.empty?

        m = ENV_LINE_RE.match(line)
        return entry(name, user, line, env) unless m

        env[m[1]] = m[2]
      end
      nil
    end

    def entry(name, user, line, env)
      if line.start_with?('@')
        time, command = line.split(/\s+/, 2)
        return Entry.new(name: name, user: user, time: time.delete_prefix('@'), command: command, environment: env)
      end
      parts = line.split(/\s+/, 6)
      return nil unless parts.size == 6

      fields = Cron::FIELDS.map(&:to_sym).zip(parts).to_h
      Entry.new(name: name, user: user, command: parts[5], environment: env, **fields)
    end

    def dump(entry)
      "#{JSON.pretty_generate(entry.to_h.transform_keys(&:to_s))}\n"
    end

    def load(text)
      data = JSON.parse(text)
      Entry.new(**Entry.members.to_h { |m| [m, data[m.to_s]] })
    end

    # The schedule comes from the attributes when they set one, else from
    # the entry saved at migration, else walden's default. Command, user and
    # environment come from the saved entry, else the attributes.
    def restore_properties(saved:, schedule:, command:, user:)
      props = { 'command' => saved&.command || command, 'user' => saved&.user || user }
      props.merge!(schedule_properties(saved, schedule))
      props.merge(environment_properties(saved&.environment || {}))
    end

    def schedule_properties(saved, schedule)
      return Cron.fields(schedule) if schedule
      return { 'time' => saved.time } if saved&.time
      return Cron::FIELDS.to_h { |f| [f, saved[f.to_sym]] } if saved

      Cron.fields(Cron::DEFAULT_SCHEDULE)
    end

    def environment_properties(env)
      props = {}
      other = {}
      env.each do |k, v|
        ENV_PROPERTIES.key?(k) ? props[ENV_PROPERTIES[k]] = v : other[k] = v
      end
      props['environment'] = other unless other.empty?
      props
    end
  end
end
