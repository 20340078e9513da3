# frozen_string_literal: true

require 'json'

module Walden
  # Cron fields <-> WALDEN_BACKUP_SCHEDULE, and the Chef-written crontab
  # entry of the WAL-E cookbooks.
  module Cron
    FIELDS = %w[minute hour day month weekday].freeze
    RANGES = { 'minute' => 0..59, 'hour' => 0..23, 'day' => 1..31, 'month' => 1..12, 'weekday' => 0..7 }.freeze
    # A field a role leaves out: minute and hour default to 0 so a partial
    # role never turns into backups every minute; the rest run every time.
    DEFAULTS = { 'minute' => '0', 'hour' => '0', 'day' => '*', 'month' => '*', 'weekday' => '*' }.freeze
    DEFAULT_SCHEDULE = '0 0 * * *'
    WEEKDAYS = %w[sunday monday tuesday wednesday thursday friday saturday].freeze
    MONTHS = %w[january february march april may june july august september october november december].freeze
    # Chef's cron `time` property and cron's @ words, as five fields.
    SPECIALS = {
      'hourly' => '0 * * * *', 'daily' => '0 0 * * *', 'midnight' => '0 0 * * *', 'weekly' => '0 0 * * 0',
      'monthly' => '0 0 1 * *', 'yearly' => '0 0 1 1 *', 'annually' => '0 0 1 1 *'
    }.freeze
    ITEM_RE = %r{\A(\*|\d+(?:-\d+)?)(?:/(\d+))?\z}.freeze
    # The environment lines Chef writes and the cron properties they come from.
    ENV_PROPERTIES = { 'MAILTO' => 'mailto', 'PATH' => 'path', 'HOME' => 'home', 'SHELL' => 'shell' }.freeze

    # A crontab entry found under "# Chef Name: <name>".
    Entry = Struct.new(:name, :user, :minute, :hour, :day, :month, :weekday, :time, :command, :environment,
                       keyword_init: true)

    module_function

    # fields: {'minute'=>..., ...} as a cron resource takes them (strings,
    # integers, day and month names or symbols), or {'time'=>:daily}.
    def schedule(fields)
      time = fields['time']
      return special(time) if time && !time.to_s.empty?

      FIELDS.map { |f| normalize(f, fields[f]) }.join(' ')
    end

    def special(time)
      SPECIALS.fetch(time.to_s.delete_prefix('@')) do
        raise ConfigError, "cron time #{time.inspect} has no five-field equivalent"
      end
    end

    def normalize(field, value)
      str = value.to_s.strip.downcase
      return DEFAULTS[field] if str.empty?

      str = names_to_numbers(field, str)
      validate!(field, str)
      field == 'weekday' ? sunday_as_zero(str) : str
    end

    def names_to_numbers(field, str)
      str.gsub(/[a-z]+/) do |word|
        names = { 'weekday' => WEEKDAYS, 'month' => MONTHS }[field]
        idx = names && word.size >= 3 ? names.index { |n| n.start_with?(word) } : nil
        raise ConfigError, "cron #{field} #{str.inspect}: #{word.inspect} is not a #{field} name" unless idx

        (field == 'month' ? idx + 1 : idx).to_s
      end
    end

    def validate!(field, str)
      str.split(',', -1).each do |item|
        m = ITEM_RE.match(item)
        raise ConfigError, "cron #{field} #{str.inspect} is not a cron field" unless m

        check_item!(field, str, m)
      end
    end

    def check_item!(field, str, match)
      bounds = match[1] == '*' ? [] : match[1].split('-').map(&:to_i)
      ok = bounds.all? { |n| RANGES[field].cover?(n) } && (bounds.size < 2 || bounds[0] <= bounds[1])
      ok &&= match[2].nil? || match[2].to_i >= 1
      raise ConfigError, "cron #{field} #{str.inspect} is out of range #{RANGES[field]}" unless ok
    end

    # Cron takes 7 for Sunday; a schedule parser may not, so write 0.
    def sunday_as_zero(str)
      str.split(',').map do |item|
        case item
        when '7' then '0'
        when /\A(\d)-7\z/ then Regexp.last_match(1) == '7' ? '0' : "#{Regexp.last_match(1)}-6,0"
        else item
        end
      end.join(',')
    end

    # The five fields of a schedule, for writing a cron entry back.
    def fields(schedule)
      str = schedule.to_s.strip
      str = special(str) if str.start_with?('@')
      parts = str.split(/\s+/)
      raise ConfigError, "WALDEN_BACKUP_SCHEDULE #{schedule.inspect} must have five fields" unless parts.size == 5

      FIELDS.zip(parts).to_h.each { |f, v| validate!(f, v) }
    end

    # The entry Chef's cron resource wrote: the marker line, then optional
    # NAME=value lines, then the schedule and command.
    def find(crontab, name, user)
      lines = crontab.to_s.lines.map(&:chomp)
      start = lines.index("# Chef Name: #{name}")
      return nil unless start

      env = {}
      lines[(start + 1)..].each do |line|
        next if line.strip.empty?
        next env[Regexp.last_match(1)] = Regexp.last_match(2) if line =~ /\A([A-Za-z_][A-Za-z0-9_]*)=(.*)\z/

        return entry_from_line(name, user, line, env)
      end
      nil
    end

    def entry_from_line(name, user, line, env)
      if line.start_with?('@')
        time, command = line.split(/\s+/, 2)
        return Entry.new(name: name, user: user, time: time.delete_prefix('@'), command: command, environment: env)
      end
      parts = line.split(/\s+/, 6)
      return nil unless parts.size == 6

      Entry.new(name: name, user: user, command: parts[5], environment: env, **FIELDS.zip(parts).to_h.transform_keys(&:to_sym))
    end

    def dump(entry)
      "#{JSON.pretty_generate(entry.to_h.transform_keys(&:to_s))}\n"
    end

    def load(text)
      data = JSON.parse(text)
      Entry.new(**Entry.members.to_h { |m| [m, data[m.to_s]] })
    end

    # The properties of the cron resource that restores the WAL-E backup.
    # The schedule comes from the attributes when they set one; otherwise
    # from the entry saved at migration, else walden's default. The command,
    # user and environment come from the saved entry, else the attributes.
    def restore_properties(saved:, schedule:, command:, user:)
      props = { 'command' => saved&.command || command, 'user' => saved&.user || user }
      props.merge!(schedule_properties(saved, schedule))
      props.merge(environment_properties(saved&.environment || {}))
    end

    def schedule_properties(saved, schedule)
      return fields(schedule) if schedule
      return { 'time' => saved.time } if saved&.time
      return FIELDS.to_h { |f| [f, saved[f.to_sym]] } if saved

      fields(DEFAULT_SCHEDULE)
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
