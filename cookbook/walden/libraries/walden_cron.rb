# frozen_string_literal: true

module Walden
  # Cron fields <-> WALDEN_BACKUP_SCHEDULE (five fields, UTC).
  module Cron
    FIELDS = %w[minute hour day month weekday].freeze
    RANGES = { 'minute' => 0..59, 'hour' => 0..23, 'day' => 1..31, 'month' => 1..12, 'weekday' => 0..7 }.freeze
    # A field a role leaves out: minute and hour default to 0 so a partial
    # role never turns into backups every minute; the rest run every time.
    DEFAULTS = { 'minute' => '0', 'hour' => '0', 'day' => '*', 'month' => '*', 'weekday' => '*' }.freeze
    DEFAULT_SCHEDULE = '0 0 * * *'
    NAMES = {
      'weekday' => %w[sunday monday tuesday wednesday thursday friday saturday],
      'month' => %w[january february march april may june july august september october november december]
    }.freeze
    # Chef's cron `time` property and cron's @ words, as five fields.
    SPECIALS = {
      'hourly' => '0 * * * *', 'daily' => '0 0 * * *', 'midnight' => '0 0 * * *', 'weekly' => '0 0 * * 0',
      'monthly' => '0 0 1 * *', 'yearly' => '0 0 1 1 *', 'annually' => '0 0 1 1 *'
    }.freeze
    ITEM_RE = %r{\A(\*|\d+(?:-\d+)?)(?:/(\d+))?\z}.freeze

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

    # "mon" or "monday" -> 1, "jan" -> 1; at least three letters, as cron.
    def names_to_numbers(field, str)
      str.gsub(/[a-z]+/) do |word|
        idx = word.size >= 3 ? NAMES.fetch(field, []).index { |n| n.start_with?(word) } : nil
        raise ConfigError, "cron #{field} #{str.inspect}: #{word.inspect} is not a #{field} name" unless idx

        (field == 'month' ? idx + 1 : idx).to_s
      end
    end

    def validate!(field, str)
      str.split(',', -1).each do |item|
        m = ITEM_RE.match(item)
        raise ConfigError, "cron #{field} #{str.inspect} is not a cron field" unless m
        raise ConfigError, "cron #{field} #{str.inspect} is out of range #{RANGES[field]}" unless item_ok?(field, m)
      end
    end

    # Every number in range, ranges ascending, steps at least 1.
    def item_ok?(field, match)
      bounds = match[1] == '*' ? [] : match[1].split('-').map(&:to_i)
      bounds.all? { |n| RANGES[field].cover?(n) } && bounds == bounds.sort && match[2].to_s !~ /\A0+\z/
    end

    # Cron takes 7 for Sunday; a schedule parser may not, so write 0.
    def sunday_as_zero(str)
      str.split(',').map do |item|
        case item
        when '7', '7-7' then '0'
        when /\A(\d)-7\z/ then "#{Regexp.last_match(1)}-6,0"
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
  end
end
